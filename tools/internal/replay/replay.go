// Package replay re-runs recorded saga traffic (tools/internal/capture) through
// sagasuite's real code. Service replays ONE service alone: a fresh store of
// its real type (the in-process dev stack running only that service), the
// recording's records on the topics it consumes delivered one at a time in
// recorded order per partition, the handlers' clock set from the recorded
// events before each delivery, and what it emits collected from its topic.
//
// Determinism is the point: the same recording replayed twice gives the
// same emitted records and end state, byte for byte, and — when the service's
// code did not change — the very events the recording holds (same derived
// ids, same occurred_at). The rules the services keep for that are in the
// README ("Replay one service").
package replay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// Consumes lists the topics each service's consumer group subscribes to
// (services/<name>/service.go); a one-service replay delivers exactly these.
var Consumes = map[string][]string{
	suite.Order:        {events.TopicInventory, events.TopicPayments, events.TopicShipments},
	suite.Inventory:    {events.TopicOrders, events.TopicPayments, events.TopicShipments},
	suite.Payment:      {events.TopicInventory, events.TopicOrders, events.TopicShipments},
	suite.Shipping:     {events.TopicInventory, events.TopicOrders},
	suite.Notification: events.AllTopics,
}

// Produces lists the topic each service publishes its events to (none for
// notification, which only records and tells customers).
var Produces = map[string][]string{
	suite.Order:        {events.TopicOrders},
	suite.Inventory:    {events.TopicInventory},
	suite.Payment:      {events.TopicPayments},
	suite.Shipping:     {events.TopicShipments},
	suite.Notification: nil,
}

// Supported are the services Service can replay alone. The order service is
// driven by its API stimuli (Stimuli: CreateOrder, CancelOrder, the clock
// passing a deadline) besides the records it consumes.
var Supported = []string{suite.Order, suite.Inventory, suite.Payment, suite.Shipping, suite.Notification}

// Options configure Service.
type Options struct {
	// Service is the service to replay (one of Supported).
	Service string
	// Header and Records are the recording (capture.ReadFile).
	Header  capture.Header
	Records []capture.Record
	// LogOutput receives the replayed service's logs (nil: discarded) at
	// LogLevel (default warn).
	LogOutput io.Writer
	LogLevel  config.LogLevel
	// DeliveryTimeout bounds the wait for the service to process one
	// delivered record and publish what it emitted (default 2 minutes: a
	// bound for a hang, not a speed target).
	DeliveryTimeout time.Duration
	// StartTimeout bounds the dev stack's start (default 3 minutes).
	StartTimeout time.Duration
	// ToolVersion goes into Result.Header.
	ToolVersion string
	// Progress, when set, hears after each delivery.
	Progress func(done, total int)
	// Servers, when given, replace the in-process servers (a fresh
	// namespace on them, dropped after the replay).
	Servers Servers
}

// Result is what a one-service replay produced.
type Result struct {
	Service string
	// Header describes Emitted as a recording of its own (deterministic:
	// its captured_at is the input's).
	Header capture.Header
	// Emitted are the records the service published, ordered by topic, key,
	// then emission order. Broker-assigned fields that no code of ours
	// decides are normalised so two replays compare byte for byte: the
	// timestamp is the event's occurred_at (ms), trace headers are dropped.
	Emitted []capture.Record
	// State is the service's end state read through its gRPC API for the
	// orders (and customers) in the recording, as indented JSON.
	State []byte
	// Delivered is how many records were delivered; Elapsed how long the
	// deliveries took (stack start and state reads excluded); Recorded the
	// span of the delivered records' timestamps (first to last).
	Delivered int
	Elapsed   time.Duration
	Recorded  time.Duration
}

// Delivery is one record to deliver, or (order service only) one API
// stimulus to send, and the clock time to set before it.
type Delivery struct {
	Record capture.Record
	// Stimulus, when set, replaces Record: a CreateOrder, CancelOrder or
	// deadline to replay at At.
	Stimulus *Stimulus
	At       time.Time
}

// time is when the delivery was recorded: the record's timestamp or the
// stimulus's occurred_at.
func (d Delivery) time() time.Time {
	if d.Stimulus != nil {
		return d.Stimulus.At
	}
	return d.Record.Time()
}

// String names the delivery in errors.
func (d Delivery) String() string {
	if s := d.Stimulus; s != nil {
		return fmt.Sprintf("%s of order %s", s.Kind, s.Event.GetOrderId())
	}
	return fmt.Sprintf("%s/%d@%d", d.Record.Topic, d.Record.Partition, d.Record.Offset)
}

// Service replays opts.Records into opts.Service running alone; see the
// package comment.
func Service(ctx context.Context, opts Options) (res *Result, err error) {
	if !slices.Contains(Supported, opts.Service) {
		return nil, fmt.Errorf("replay: cannot replay service %q alone (want one of %v)", opts.Service, Supported)
	}
	if opts.LogOutput == nil {
		opts.LogOutput = io.Discard
	}
	if opts.LogLevel == "" {
		opts.LogLevel = config.LevelWarn
	}
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = 2 * time.Minute
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 3 * time.Minute
	}
	plan, err := Plan(opts.Service, opts.Records)
	if err != nil {
		return nil, err
	}
	catalog, err := catalogOf(opts.Header.Seed)
	if err != nil {
		return nil, err
	}
	// The deadline travels in ORDER_CREATED: the order service must give
	// the recorded one (changed before a create that recorded another).
	var deadline time.Duration
	for _, p := range plan {
		if p.Stimulus != nil && p.Stimulus.Kind == StimulusCreate {
			if deadline, err = OrderDeadline(p.Stimulus.Event); err != nil {
				return nil, err
			}
			break
		}
	}

	start := opts.Header.CapturedAt.UTC()
	if len(plan) > 0 {
		start = plan[0].At
	}
	clk := clock.NewManual(start)
	free := "127.0.0.1:0"
	all := suite.Addrs{Order: free, Inventory: free, Payment: free, Shipping: free, Notification: free}
	stackOpts := devstack.Options{
		GRPC: all, Ops: all, KafkaAddr: free, MySQLAddr: free, MongoAddr: free, GatewayAddr: free,
		Services: []string{opts.Service}, Clock: clk, Catalog: catalog, OrderDeadline: deadline,
		// A deadline stimulus waits for the sweep: a short tick keeps that
		// wait (and the replay) short; the clock, not the tick, decides.
		DeadlineScanInterval: 10 * time.Millisecond,
		LogLevel:             opts.LogLevel, LogOutput: opts.LogOutput, ReadyTimeout: opts.StartTimeout,
	}
	dropServers, err := opts.Servers.Apply(&stackOpts)
	if err != nil {
		return nil, err
	}
	// Deferred first, so it runs after the stack stopped.
	defer func() { err = errors.Join(err, dropServers(ctx)) }()
	st, err := devstack.Start(ctx, stackOpts)
	if err != nil {
		return nil, fmt.Errorf("replay %s: start the dev stack: %w", opts.Service, err)
	}
	defer st.Stop()

	d, err := newDeliverer(st, opts.Service)
	if err != nil {
		return nil, err
	}
	defer d.close()
	d.deadline = deadline

	res = &Result{Service: opts.Service, Delivered: len(plan)}
	if len(plan) > 0 {
		res.Recorded = plan[len(plan)-1].time().Sub(plan[0].time())
	}
	began := time.Now()
	for i, p := range plan {
		clk.Set(p.At)
		if p.Stimulus != nil {
			err = d.stimulate(ctx, *p.Stimulus, opts.DeliveryTimeout)
		} else {
			err = d.deliver(ctx, p.Record, opts.DeliveryTimeout)
		}
		if err != nil {
			return nil, fmt.Errorf("replay %s: delivery %d of %d (%s): %w", opts.Service, i+1, len(plan), p, err)
		}
		if err := st.Err(); err != nil {
			return nil, fmt.Errorf("replay %s: the service failed: %w", opts.Service, err)
		}
		if opts.Progress != nil {
			opts.Progress(i+1, len(plan))
		}
	}
	res.Elapsed = time.Since(began)
	if err := d.noneParked(ctx); err != nil {
		return nil, fmt.Errorf("replay %s: %w", opts.Service, err)
	}

	emitted, ranges, err := d.collect(ctx, Produces[opts.Service])
	if err != nil {
		return nil, fmt.Errorf("replay %s: collect emitted records: %w", opts.Service, err)
	}
	res.Emitted = emitted
	res.Header = capture.Header{Format: capture.Format, Version: capture.Version, EnvelopeSchemaVersion: events.SchemaVersion,
		Source: "replay:" + opts.Service + " of " + opts.Header.Source, Ranges: ranges,
		ToolVersion: opts.ToolVersion, CapturedAt: opts.Header.CapturedAt.UTC()}
	if res.State, err = readState(ctx, st, opts.Service, opts.Records); err != nil {
		return nil, fmt.Errorf("replay %s: read end state: %w", opts.Service, err)
	}
	return res, nil
}

// Plan is the delivery order of a one-service replay and the clock to set
// before each delivery. It reproduces the order the recorded service handled
// the records in, as far as the recording shows it:
//
//   - records of one key (order) on one partition keep their offset order —
//     the only order the bus promises (its consumer works on different keys
//     of a partition concurrently);
//   - a record the service reacted to was handled when it emitted its
//     reaction: that event's occurred_at (the first one, if several);
//   - a record it did not react to was handled at its own occurred_at, but
//     not before any reaction to a record of the same order that occurred
//     earlier (the service is assumed to have seen an order's events in the
//     order they occurred unless the recording proves otherwise);
//   - ties go to records that caused a reaction, then by topic, partition,
//     offset;
//   - the clock never goes backwards;
//   - for the order service, its stimuli (Stimuli) go in at their recorded
//     occurred_at, before records handled at the same instant.
func Plan(service string, recs []capture.Record) ([]Delivery, error) {
	topics, ok := Consumes[service]
	if !ok {
		return nil, fmt.Errorf("replay: unknown service %q", service)
	}
	reactions := reactionTimes(service, recs)
	type item struct {
		rec      capture.Record
		order    string
		occurred time.Time
		reacted  bool
		at       time.Time
	}
	var items []*item
	byOrder := map[string][]*item{}
	seen := map[string]bool{}
	for _, r := range recs {
		if !slices.Contains(topics, r.Topic) {
			continue
		}
		pos := fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset)
		if seen[pos] {
			return nil, fmt.Errorf("replay: the recording holds %s twice", pos)
		}
		seen[pos] = true
		it := &item{rec: r, occurred: r.Time()}
		if env, err := r.Event(); err == nil {
			it.order = env.GetOrderId()
			if env.GetOccurredAt() != nil {
				it.occurred = env.GetOccurredAt().AsTime().UTC()
			}
			it.at, it.reacted = reactions[env.GetEventId()]
		}
		if !it.reacted {
			it.at = it.occurred
		}
		items = append(items, it)
		if it.order != "" {
			byOrder[it.order] = append(byOrder[it.order], it)
		}
	}
	for _, it := range items {
		if it.reacted || it.order == "" {
			continue
		}
		for _, other := range byOrder[it.order] {
			if other.reacted && !other.occurred.After(it.occurred) && other.at.After(it.at) {
				it.at = other.at
			}
		}
	}

	// Queues per topic, partition and key, each in offset order; a k-way
	// merge by handling time.
	type queueKey struct {
		topic     string
		partition int
		key       string
	}
	queues := map[queueKey][]*item{}
	for _, it := range items {
		k := queueKey{it.rec.Topic, it.rec.Partition, it.rec.Key}
		queues[k] = append(queues[k], it)
	}
	keys := make([]queueKey, 0, len(queues))
	for k, q := range queues {
		slices.SortFunc(q, func(a, b *item) int { return cmp.Compare(a.rec.Offset, b.rec.Offset) })
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b queueKey) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition), cmp.Compare(a.key, b.key))
	})
	before := func(a, b *item) bool {
		if !a.at.Equal(b.at) {
			return a.at.Before(b.at)
		}
		if a.reacted != b.reacted {
			return a.reacted
		}
		return cmp.Or(cmp.Compare(a.rec.Topic, b.rec.Topic), cmp.Compare(a.rec.Partition, b.rec.Partition),
			cmp.Compare(a.rec.Offset, b.rec.Offset)) < 0
	}
	var stimuli []Stimulus
	if service == suite.Order {
		var err error
		if stimuli, err = Stimuli(recs); err != nil {
			return nil, err
		}
	}
	plan := make([]Delivery, 0, len(items)+len(stimuli))
	var last time.Time
	for {
		best := -1
		for i, k := range keys {
			if len(queues[k]) > 0 && (best < 0 || before(queues[k][0], queues[keys[best]][0])) {
				best = i
			}
		}
		if len(stimuli) > 0 && (best < 0 || !stimuli[0].At.After(queues[keys[best]][0].at)) {
			s := stimuli[0]
			stimuli = stimuli[1:]
			t := s.At
			if t.Before(last) {
				t = last // never backwards
			}
			last = t
			plan = append(plan, Delivery{Stimulus: &s, At: t})
			continue
		}
		if best < 0 {
			return plan, nil
		}
		k := keys[best]
		it := queues[k][0]
		queues[k] = queues[k][1:]
		t := it.at
		if t.Before(last) {
			t = last // never backwards
		}
		last = t
		plan = append(plan, Delivery{Record: it.rec, At: t})
	}
}

// reactionTimes maps a causing event id to the occurred_at of the first
// event service emitted in reaction to it, as recorded.
func reactionTimes(service string, recs []capture.Record) map[string]time.Time {
	out := map[string]time.Time{}
	for _, r := range recs {
		if !slices.Contains(Produces[service], r.Topic) || len(r.Envelope) == 0 {
			continue
		}
		env, err := r.Event()
		if err != nil || env.GetProducer() != service || env.GetCausationId() == "" || env.GetOccurredAt() == nil {
			continue
		}
		at := env.GetOccurredAt().AsTime().UTC()
		if prev, ok := out[env.GetCausationId()]; !ok || at.Before(prev) {
			out[env.GetCausationId()] = at
		}
	}
	return out
}

// catalogOf is the dev stack catalog of a recording's seed (nil seed: none).
func catalogOf(seed *capture.Seed) ([]devstack.Product, error) {
	catalog := []devstack.Product{} // non-nil: seed nothing rather than the default catalog
	if seed == nil {
		return catalog, nil
	}
	for _, p := range seed.Products {
		if p.Currency != "" && p.Currency != devstack.Currency {
			return nil, fmt.Errorf("replay: seed product %s is priced in %s; the dev stack seeds %s only", p.SKU, p.Currency, devstack.Currency)
		}
		if p.StockQuantity < 0 {
			return nil, fmt.Errorf("replay: seed product %s has negative stock %d", p.SKU, p.StockQuantity)
		}
		catalog = append(catalog, devstack.Product{SKU: p.SKU, Name: p.Name, Price: p.PriceMinor, Stock: p.StockQuantity})
	}
	return catalog, nil
}

// errTimeout marks a bounded wait that ran out.
var errTimeout = errors.New("timed out")

// WriteFiles writes the emitted records as a recording (capture format) to
// emittedPath and the end state to statePath; an empty path is skipped.
func (r *Result) WriteFiles(emittedPath, statePath string) error {
	if emittedPath != "" {
		if err := capture.WriteFile(emittedPath, r.Header, r.Emitted); err != nil {
			return fmt.Errorf("write %s: %w", emittedPath, err)
		}
	}
	if statePath != "" {
		if err := os.WriteFile(statePath, r.State, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", statePath, err)
		}
	}
	return nil
}
