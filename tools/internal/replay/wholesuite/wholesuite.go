// Package wholesuite replays a recording into a fresh in-process suite
// ("whole suite" mode of event replay): only the root stimuli are sent
// again — CreateOrder for each recorded ORDER_CREATED, CancelOrder for each
// customer cancel, clock moves for each deadline cancel — and the five
// services do the rest. Every derived event id then reproduces: the order id
// and ORDER_CREATED come from the recorded request id (ORDER_CREATED's
// causation id), a customer's ORDER_CANCELLED from the cancel's request id,
// a deadline's from the order id, and every later event from its cause.
//
// Timing is the one thing a suite of running services does not replay by
// itself: a cancel that raced the saga in the recording must race it the
// same way here. So the stimuli go in recorded order, one saga at a time:
// before a cancel the replay waits until the saga has emitted every event it
// had emitted before the recorded cancel, and a service whose reaction to
// one of those came only after the cancel (it was down or slow in the
// recording) is held — stopped before the order is placed, started again
// once the cancel is in — so it sees the cancel as it did then. Its
// reaction shows it read those earlier events before the cancel (else it
// would have kept a tombstone and done nothing); when they sit on another
// topic than the cancel's, which one a service back up reads first is a
// race, so the replay decides it: the held service runs first with its
// orders.v1 offsets moved past the cancel until it has emitted its
// recorded reactions, then once more from its own offsets (release). The
// demo's cancel path (shipping books, then cancels) and its deadline path
// (payment charges late, then refunds) so reproduce every time. After each
// saga the replay waits (bounded) for every event of the order the
// recording holds and for every service to have consumed everything, then
// goes on.
//
// The services' clock is a clock.Manual set to the recorded occurred_at of
// each stimulus, so the root events' timestamps and ORDER_CREATED's
// deadline reproduce. What cannot reproduce in this mode: the occurred_at
// of events the services emit on their own (the clock stands still at the
// stimulus's time while they run, the recording's moved on in real time).
// A one-service replay sets the clock before each delivery and reproduces
// those too. Sagas that overlapped in the recording are replayed one after
// another (in ORDER_CREATED order), so two orders that raced for the last
// unit of a SKU are decided in that order, whichever won then; the
// comparison then shows the other outcome. Nor is a cross-topic race held
// when the reaction's cause came after the cancel: a payment that lagged on
// orders.v1 and read a later STOCK_RESERVED before the cancel charged and
// refunded in the recording, but reads the cancel first here and does
// neither (the comparison shows both events missing).
//
// The order step history (its arrival order crosses topics) and the
// notifications of one instant are sorted in the end state, so equal
// outcomes give equal bytes.
package wholesuite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/replay"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// maxPoll is the longest pause between two checks for a saga's progress
// (the checks start at 1 ms and double): an in-process gRPC call over the
// kept-alive connection costs well under a millisecond, and every
// millisecond slept after the saga got there is replay time lost.
const maxPoll = 2 * time.Millisecond

// Options configure Replay.
type Options struct {
	// Header and Records are the recording (capture.ReadFile).
	Header  capture.Header
	Records []capture.Record
	// LogOutput receives the suite's logs (default: discarded).
	LogOutput io.Writer
	// LogLevel of the suite's logs (default warn).
	LogLevel config.LogLevel
	// SagaTimeout bounds the wait for one saga to reach its recorded end
	// and emit its recorded events (default 2 min: a bound for a hang, not
	// a speed target).
	SagaTimeout time.Duration
	// StartTimeout bounds the suite's start (default 3 min).
	StartTimeout time.Duration
	// Progress, when set, hears a line per stimulus.
	Progress io.Writer
	// Servers, when given, replace the in-process servers (a fresh
	// namespace on them, dropped after the replay; see replay.Servers).
	Servers replay.Servers
}

// Result is what the replayed suite did.
type Result struct {
	// Records are the replayed suite's records of the recording's orders,
	// normalized so two replays compare byte for byte (Normalize), in a
	// deterministic order: order by order as the stimuli came, then topic,
	// then as the partition had them.
	Records []capture.Record
	// State is the end state through the services' APIs, as JSON with
	// sorted keys (StateOf).
	State json.RawMessage
	// Orders are the replayed order ids, in stimulus order.
	Orders []string
	// Took is the replay's wall time, start of the suite to the last scan.
	Took time.Duration
	// SagasTook is the part of it spent replaying: first stimulus until
	// the last saga had emitted all its recorded events.
	SagasTook time.Duration
	// RecordedSpan is the recording's own span: its first event's
	// occurred_at to its last's.
	RecordedSpan time.Duration
}

// recordedSpan is the time from the first to the last recorded event.
func recordedSpan(sagas map[string]*saga) time.Duration {
	var first, last time.Time
	for _, s := range sagas {
		for _, e := range s.events {
			t := e.GetOccurredAt().AsTime()
			if first.IsZero() || t.Before(first) {
				first = t
			}
			if t.After(last) {
				last = t
			}
		}
	}
	return last.Sub(first)
}

// stimulus is one root input to replay.
type stimulus struct {
	kind    string // "create", "cancel" (customer), "deadline"
	orderID string
	event   *eventsv1.Envelope
	at      time.Time
}

// saga is one recorded order.
type saga struct {
	id      string
	created *eventsv1.Envelope
	events  []*eventsv1.Envelope // every recorded event of the order, by occurred_at
}

// Replay replays the recording's root stimuli into a fresh in-process suite
// and returns what it emitted and where it ended.
func Replay(ctx context.Context, opts Options) (res *Result, err error) {
	began := time.Now()
	if opts.SagaTimeout <= 0 {
		opts.SagaTimeout = 2 * time.Minute
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 3 * time.Minute
	}
	if opts.LogOutput == nil {
		opts.LogOutput = io.Discard
	}
	if opts.LogLevel == "" {
		opts.LogLevel = config.LevelWarn
	}
	sagas, stimuli, err := plan(opts.Records)
	if err != nil {
		return nil, err
	}
	if len(stimuli) == 0 {
		return nil, errors.New("replay: the recording holds no ORDER_CREATED: nothing to replay")
	}
	first := sagas[stimuli[0].orderID]
	ttl, err := replay.OrderDeadline(first.created)
	if err != nil {
		return nil, err
	}
	clk := clock.NewManual(stimuli[0].at)
	free := "127.0.0.1:0"
	all := suite.Addrs{Order: free, Inventory: free, Payment: free, Shipping: free, Notification: free}
	stackOpts := devstack.Options{
		GRPC: all, Ops: all, KafkaAddr: free, MySQLAddr: free, MongoAddr: free, GatewayAddr: free,
		Catalog: catalogOf(opts.Header), OrderDeadline: ttl, Clock: clk,
		// A deadline stimulus waits for the sweep: a short tick keeps that
		// wait short; the manual clock, not the tick, decides what is due.
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
		return nil, fmt.Errorf("replay: start the suite: %w", err)
	}
	defer st.Stop()
	conns, err := suite.Dial(st.GRPC, suite.WithToken(st.ToolToken("sagactl-replay")))
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer conns.Close()

	r := &replayer{opts: opts, st: st, c: conns.Clients, clk: clk, ttl: ttl, sagas: sagas, stimuli: stimuli,
		kafka: &kafka.Client{Addr: kafka.TCP(strings.Split(st.Servers.Kafka, ",")...), Timeout: 30 * time.Second}}
	stimuliBegan := time.Now()
	if err := r.run(ctx); err != nil {
		return nil, err
	}
	sagasTook := time.Since(stimuliBegan)

	res = &Result{RecordedSpan: recordedSpan(sagas), SagasTook: sagasTook}
	for _, s := range stimuli {
		if s.kind == "create" {
			res.Orders = append(res.Orders, s.orderID)
		}
	}
	if res.Records, err = scan(ctx, st, res.Orders); err != nil {
		return nil, err
	}
	if res.State, err = StateOf(ctx, conns.Clients, res.Orders, opts.Header); err != nil {
		return nil, err
	}
	res.Took = time.Since(began)
	return res, nil
}

// plan finds the recorded sagas and their root stimuli, in recorded order.
func plan(recs []capture.Record) (map[string]*saga, []stimulus, error) {
	sagas := map[string]*saga{}
	var stimuli []stimulus
	for _, rec := range recs {
		if len(rec.Envelope) == 0 {
			continue // not an event: nothing to replay
		}
		env, err := rec.Event()
		if err != nil {
			return nil, nil, fmt.Errorf("replay: %w", err)
		}
		s := sagas[env.GetOrderId()]
		if s == nil {
			s = &saga{id: env.GetOrderId()}
			sagas[s.id] = s
		}
		if slices.ContainsFunc(s.events, func(e *eventsv1.Envelope) bool { return e.GetEventId() == env.GetEventId() }) {
			continue // a duplicate delivery in the recording
		}
		s.events = append(s.events, env)
		at := env.GetOccurredAt().AsTime()
		switch env.GetType() {
		case eventsv1.EventType_EVENT_TYPE_ORDER_CREATED:
			s.created = env
			stimuli = append(stimuli, stimulus{kind: "create", orderID: s.id, event: env, at: at})
		case eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED:
			switch env.GetOrderCancelled().GetReason() {
			case eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED:
				stimuli = append(stimuli, stimulus{kind: "cancel", orderID: s.id, event: env, at: at})
			case eventsv1.CancelReason_CANCEL_REASON_TIMEOUT:
				stimuli = append(stimuli, stimulus{kind: "deadline", orderID: s.id, event: env, at: at})
			}
		}
	}
	for _, s := range sagas {
		sort.SliceStable(s.events, func(i, j int) bool {
			return s.events[i].GetOccurredAt().AsTime().Before(s.events[j].GetOccurredAt().AsTime())
		})
	}
	// A stimulus of an order whose ORDER_CREATED is not recorded cannot be
	// replayed (the order would not exist): say so rather than guess.
	for _, st := range stimuli {
		if sagas[st.orderID].created == nil {
			return nil, nil, fmt.Errorf("replay: order %s: %s recorded without its ORDER_CREATED (record the whole saga)", st.orderID, st.kind)
		}
	}
	sort.SliceStable(stimuli, func(i, j int) bool { return stimuli[i].at.Before(stimuli[j].at) })
	return sagas, stimuli, nil
}

// catalogOf is the recorded catalog (none when the header has no seed:
// the replay must not invent stock the recording did not have).
func catalogOf(h capture.Header) []devstack.Product {
	out := []devstack.Product{}
	if h.Seed == nil {
		return out
	}
	for _, p := range h.Seed.Products {
		out = append(out, devstack.Product{SKU: p.SKU, Name: p.Name, Price: p.PriceMinor, Stock: p.StockQuantity})
	}
	return out
}

type replayer struct {
	opts    Options
	st      *devstack.Stack
	c       suite.Clients
	clk     *clock.Manual
	ttl     time.Duration // the order service's deadline now
	sagas   map[string]*saga
	stimuli []stimulus
	held    map[string]bool // services stopped until a cancel is in
	kafka   *kafka.Client   // the suite's broker, for consumer-group offsets
}

func (r *replayer) progress(format string, args ...any) {
	if r.opts.Progress != nil {
		fmt.Fprintf(r.opts.Progress, format+"\n", args...)
	}
}

// run sends the stimuli saga by saga. A saga's stimuli follow its create:
// its cancel comes before the next saga is started (sequential sagas keep
// each one's timing its own).
func (r *replayer) run(ctx context.Context) error {
	byOrder := map[string][]stimulus{}
	var order []string
	for _, s := range r.stimuli {
		if s.kind == "create" {
			order = append(order, s.orderID)
		}
		byOrder[s.orderID] = append(byOrder[s.orderID], s)
	}
	for _, id := range order {
		if err := r.replaySaga(ctx, r.sagas[id], byOrder[id]); err != nil {
			return err
		}
	}
	return nil
}

func (r *replayer) replaySaga(ctx context.Context, s *saga, stimuli []stimulus) error {
	ttl, err := replay.OrderDeadline(s.created)
	if err != nil {
		return err
	}
	if ttl != r.ttl { // the deadline travels in ORDER_CREATED: give the recorded one
		if err := r.st.SetOrderDeadline(ctx, ttl); err != nil {
			return fmt.Errorf("replay: order %s: deadline %s: %w", s.id, ttl, err)
		}
		r.ttl = ttl
	}
	// Services to hold: those that reacted to a pre-cancel event only after
	// the cancel.
	var cancelAt time.Time
	for _, st := range stimuli {
		if st.kind != "create" {
			cancelAt = st.at
		}
	}
	late := r.lateReactors(s, cancelAt)
	hold := slices.Sorted(maps.Keys(late))
	for _, name := range hold {
		r.progress("order %s: holding %s until the cancel is in (it reacted only after it in the recording)", s.id, name)
		if err := r.st.StopService(ctx, name); err != nil {
			return fmt.Errorf("replay: hold %s: %w", name, err)
		}
	}
	for _, st := range stimuli {
		switch st.kind {
		case "create":
			r.setClock(st.at)
			if err := r.create(ctx, st.event); err != nil {
				return err
			}
		case "cancel", "deadline":
			// The saga first gets as far as it had got; only then does the
			// clock move (a deadline must not pass early).
			if err := r.awaitEvents(ctx, s, before(s, st.at)); err != nil {
				return err
			}
			r.setClock(st.at)
			if st.kind == "cancel" {
				if err := r.cancel(ctx, st.event); err != nil {
					return err
				}
			} else {
				r.progress("order %s: clock at %s, past the deadline", s.id, st.at.Format(time.RFC3339Nano))
			}
			if err := r.awaitEvents(ctx, s, []*eventsv1.Envelope{st.event}); err != nil {
				return err
			}
			for _, name := range hold {
				if err := r.release(ctx, s, name, late[name]); err != nil {
					return err
				}
			}
			hold = nil
		}
	}
	if err := r.awaitEvents(ctx, s, s.events); err != nil {
		return err
	}
	// The order service records a step for every saga event but the
	// notifications' own, with no event of its own to show it did: wait
	// for its history too, so no late step lands under the next stimulus's
	// clock.
	if err := r.awaitSteps(ctx, s); err != nil {
		return err
	}
	// Nor do other handlers that only store (shipping keeping a cancelled
	// order): every group must have committed all it consumes before the
	// clock moves on or the end state is read.
	return r.awaitSettled(ctx, s)
}

// awaitSettled waits until every service's consumer group committed every
// record on the topics it consumes (replay.Consumes).
func (r *replayer) awaitSettled(ctx context.Context, s *saga) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.SagaTimeout)
	defer cancel()
	var why string
	for wait := time.Millisecond; ; wait = min(wait*2, maxPoll) {
		var err error
		why, err = lagging(ctx, r.kafka, r.st.Servers.TopicPrefix, replay.Consumes)
		if err == nil && why == "" {
			return nil
		}
		if err != nil {
			why = err.Error() // the broker may be busy: retried until the bound
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replay: order %s: within %s the services did not consume everything: %s", s.id, r.opts.SagaTimeout, why)
		case <-time.After(wait):
		}
	}
}

// awaitSteps waits until the order's step history holds every recorded
// event of s (NOTIFICATION_SENT aside).
func (r *replayer) awaitSteps(ctx context.Context, s *saga) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.SagaTimeout)
	defer cancel()
	var missing []string
	for wait := time.Millisecond; ; wait = min(wait*2, maxPoll) {
		resp, err := r.c.Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: s.id})
		if err == nil {
			have := map[string]bool{}
			for _, st := range resp.GetOrder().GetSteps() {
				have[st.GetEventId()] = true
			}
			missing = missing[:0]
			for _, e := range s.events {
				if e.GetType() != eventsv1.EventType_EVENT_TYPE_NOTIFICATION_SENT && !have[e.GetEventId()] {
					missing = append(missing, fmt.Sprintf("%s %s", events.TypeName(e.GetType()), e.GetEventId()))
				}
			}
			if len(missing) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("replay: order %s: GetOrder: %w", s.id, err)
			}
			return fmt.Errorf("replay: order %s: within %s the order's step history did not record %d event(s): %s",
				s.id, r.opts.SagaTimeout, len(missing), strings.Join(missing, ", "))
		case <-time.After(wait):
		}
	}
}

// setClock moves the services' clock to t (never back: the recording's
// stimuli are in time order, and a clock going back would make the order
// service's deadline sweep see orders younger than they are).
func (r *replayer) setClock(t time.Time) {
	if t.After(r.clk.Now()) {
		r.clk.Set(t)
	}
}

// lateReactors are the services whose reaction to an event of s recorded
// before cancelAt came after it, each with those reactions. Zero cancelAt:
// none.
func (r *replayer) lateReactors(s *saga, cancelAt time.Time) map[string][]*eventsv1.Envelope {
	if cancelAt.IsZero() {
		return nil
	}
	pre := map[string]bool{}
	for _, e := range before(s, cancelAt) {
		pre[e.GetEventId()] = true
	}
	out := map[string][]*eventsv1.Envelope{}
	for _, e := range s.events {
		if pre[e.GetCausationId()] && e.GetOccurredAt().AsTime().After(cancelAt) && slices.Contains(suite.Services, e.GetProducer()) {
			out[e.GetProducer()] = append(out[e.GetProducer()], e)
		}
	}
	return out
}

// release starts a held service again once the cancel is in. It reacted,
// in the recording, to the events of reactions (pre-cancel causes) before
// it saw the cancel — else it would have kept a tombstone and done
// nothing. Back at once, it would find both waiting and read them in
// whichever order its fetchers deliver, for a cause on another topic than
// the cancel's (Kafka orders a partition, not two topics). So the replay
// decides the order: while the service is still stopped its group's
// offsets on the cancel's topic move to the end, it runs until it has
// emitted reactions, stops, gets its offsets back and runs again, now
// reading the cancel (and whatever else it skipped; the services are
// idempotent per event id, so nothing is read twice to effect). A cause on
// the cancel's own topic is ordered by its partition already (one order,
// one key, one partition): plain restart.
func (r *replayer) release(ctx context.Context, s *saga, name string, reactions []*eventsv1.Envelope) error {
	byID := map[string]*eventsv1.Envelope{}
	for _, e := range s.events {
		byID[e.GetEventId()] = e
	}
	ordered := len(reactions) > 0
	for _, e := range reactions {
		cause := byID[e.GetCausationId()]
		if topic, err := events.TopicOf(cause.GetType()); err != nil || topic == events.TopicOrders {
			ordered = false
		}
	}
	if !ordered {
		if err := r.st.StartService(ctx, name); err != nil {
			return fmt.Errorf("replay: release %s: %w", name, err)
		}
		return nil
	}
	r.progress("order %s: %s back, reading its earlier events before the cancel (as in the recording)", s.id, name)
	prefix := r.st.Servers.TopicPrefix
	g := newGroupOffsets(strings.Split(r.st.Servers.Kafka, ","), prefix+name, prefix+events.TopicOrders)
	cctx, cancel := context.WithTimeout(ctx, r.opts.SagaTimeout)
	defer cancel()
	saved, err := g.committed(cctx)
	if err != nil {
		return fmt.Errorf("replay: release %s: %w", name, err)
	}
	ends, err := g.ends(cctx)
	if err != nil {
		return fmt.Errorf("replay: release %s: %w", name, err)
	}
	if err := g.commit(cctx, ends); err != nil {
		return fmt.Errorf("replay: release %s: skip the cancel for now: %w", name, err)
	}
	if err := r.st.StartService(ctx, name); err != nil {
		return fmt.Errorf("replay: release %s: %w", name, err)
	}
	if err := r.awaitEvents(ctx, s, reactions); err != nil {
		return err
	}
	if err := r.st.StopService(ctx, name); err != nil {
		return fmt.Errorf("replay: release %s: stop it again: %w", name, err)
	}
	if err := g.commit(cctx, saved); err != nil {
		return fmt.Errorf("replay: release %s: give back its %s offsets: %w", name, events.TopicOrders, err)
	}
	r.progress("order %s: %s back again, reading the cancel", s.id, name)
	if err := r.st.StartService(ctx, name); err != nil {
		return fmt.Errorf("replay: release %s: %w", name, err)
	}
	return nil
}

// before are s's events recorded before t.
func before(s *saga, t time.Time) []*eventsv1.Envelope {
	var out []*eventsv1.Envelope
	for _, e := range s.events {
		if e.GetOccurredAt().AsTime().Before(t) {
			out = append(out, e)
		}
	}
	return out
}

func (r *replayer) create(ctx context.Context, env *eventsv1.Envelope) error {
	req := replay.CreateOrderRequest(env)
	cctx, cancel := context.WithTimeout(ctx, r.opts.SagaTimeout)
	defer cancel()
	resp, err := r.c.Order.CreateOrder(cctx, req, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("replay: CreateOrder of order %s (request %s): %w", env.GetOrderId(), env.GetCausationId(), err)
	}
	if got := resp.GetOrder().GetOrderId(); got != env.GetOrderId() {
		return fmt.Errorf("replay: CreateOrder with request %s made order %s, the recording has %s (the order id no longer derives from the request id the same way)",
			env.GetCausationId(), got, env.GetOrderId())
	}
	r.progress("order %s: CreateOrder at %s", env.GetOrderId(), env.GetOccurredAt().AsTime().Format(time.RFC3339Nano))
	return nil
}

func (r *replayer) cancel(ctx context.Context, env *eventsv1.Envelope) error {
	cctx, cancel := context.WithTimeout(ctx, r.opts.SagaTimeout)
	defer cancel()
	_, err := r.c.Order.CancelOrder(cctx, replay.CancelOrderRequest(env), grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("replay: CancelOrder of order %s (request %s): %w", env.GetOrderId(), env.GetCausationId(), err)
	}
	r.progress("order %s: CancelOrder at %s", env.GetOrderId(), env.GetOccurredAt().AsTime().Format(time.RFC3339Nano))
	return nil
}

// awaitEvents waits until the notification service's saga log of s (it
// records every event) holds each of want, by event id.
func (r *replayer) awaitEvents(ctx context.Context, s *saga, want []*eventsv1.Envelope) error {
	if len(want) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.SagaTimeout)
	defer cancel()
	var missing []string
	for wait := time.Millisecond; ; wait = min(wait*2, maxPoll) {
		resp, err := r.c.Notification.GetSagaLog(ctx, &notificationv1.GetSagaLogRequest{OrderId: s.id})
		if err == nil || status.Code(err) == codes.NotFound {
			have := map[string]bool{}
			for _, e := range resp.GetEvents() {
				have[e.GetEventId()] = true
			}
			missing = missing[:0]
			for _, e := range want {
				if !have[e.GetEventId()] {
					missing = append(missing, fmt.Sprintf("%s %s", events.TypeName(e.GetType()), e.GetEventId()))
				}
			}
			if len(missing) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil && status.Code(err) != codes.NotFound {
				return fmt.Errorf("replay: order %s: saga log: %w", s.id, err)
			}
			return fmt.Errorf("replay: order %s: within %s the replayed suite did not emit %d recorded event(s): %s",
				s.id, r.opts.SagaTimeout, len(missing), strings.Join(missing, ", "))
		case <-time.After(wait):
		}
	}
}

// scan reads the suite's topics and keeps the records of orders,
// normalized and in a deterministic order.
func scan(ctx context.Context, st *devstack.Stack, orders []string) ([]capture.Record, error) {
	want := map[string]bool{}
	rank := map[string]int{}
	for i, id := range orders {
		want[id], rank[id] = true, i
	}
	var recs []capture.Record
	_, err := capture.Scan(ctx, capture.Source{Brokers: strings.Split(st.Servers.Kafka, ","), Prefix: st.Servers.TopicPrefix,
		Topics: events.AllTopics, Range: bus.ScanRange{From: -1, To: -1}, OrderIDs: want}, func(rec capture.Record) error {
		recs = append(recs, rec)
		return nil
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("replay: scan the suite's topics: %w", err)
	}
	// Scan hands partitions in turn, offsets ascending: a stable sort keeps
	// each partition's order within an order and topic.
	sort.SliceStable(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if rank[a.Key] != rank[b.Key] {
			return rank[a.Key] < rank[b.Key]
		}
		return a.Topic < b.Topic
	})
	for i := range recs {
		recs[i] = Normalize(recs[i])
	}
	return recs, nil
}

// Normalize drops what differs between two runs of the same replay and no
// event carries: the broker's offset and timestamp (the timestamp becomes
// the event's occurred_at) and trace context headers (fresh trace ids each
// run).
func Normalize(rec capture.Record) capture.Record {
	rec.Offset = 0
	if env, err := rec.Event(); err == nil {
		rec.Timestamp = env.GetOccurredAt().AsTime().UnixMilli()
	}
	var headers []capture.KafkaHeader
	for _, h := range rec.Headers {
		if h.Key == "traceparent" || h.Key == "tracestate" || h.Key == "baggage" {
			continue
		}
		headers = append(headers, h)
	}
	rec.Headers = headers
	return rec
}

// stateJSON turns m into compact protojson with stable bytes (null for nil).
func stateJSON(m proto.Message) (json.RawMessage, error) {
	if m == nil || !m.ProtoReflect().IsValid() {
		return json.RawMessage("null"), nil
	}
	return capture.StableJSON(m)
}

// OrderState is one order's end state across the services.
type OrderState struct {
	Order         json.RawMessage   `json:"order"`
	Payment       json.RawMessage   `json:"payment"`
	Shipment      json.RawMessage   `json:"shipment"`
	Notifications []json.RawMessage `json:"notifications"`
}

// State is the suite's end state for a set of orders.
type State struct {
	Orders map[string]OrderState      `json:"orders"`
	Stock  map[string]json.RawMessage `json:"stock"`
}

// StateOf reads the end state of orders through the services' gRPC APIs:
// each order with its steps (sorted: sortSteps), its payment (refunds included) and shipment
// (null when none), its customer's notifications about it, and the stock of
// every SKU the header's seed and the orders name. JSON object keys are
// sorted (encoding/json sorts map keys), so equal states are equal bytes.
func StateOf(ctx context.Context, c suite.Clients, orders []string, h capture.Header) (json.RawMessage, error) {
	st := State{Orders: map[string]OrderState{}, Stock: map[string]json.RawMessage{}}
	skus := map[string]bool{}
	if h.Seed != nil {
		for _, p := range h.Seed.Products {
			skus[p.SKU] = true
		}
	}
	for _, id := range orders {
		o, err := c.Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: id})
		if err != nil {
			return nil, fmt.Errorf("replay state: GetOrder %s: %w", id, err)
		}
		var os OrderState
		if os.Order, err = stateJSON(sortSteps(o.GetOrder())); err != nil {
			return nil, err
		}
		for _, l := range o.GetOrder().GetLines() {
			skus[l.GetSku()] = true
		}
		pay, err := c.Payment.GetPayment(ctx, &paymentv1.GetPaymentRequest{OrderId: id})
		if err != nil && status.Code(err) != codes.NotFound {
			return nil, fmt.Errorf("replay state: GetPayment %s: %w", id, err)
		}
		if os.Payment, err = stateJSON(pay.GetPayment()); err != nil {
			return nil, err
		}
		ship, err := c.Shipping.GetShipment(ctx, &shippingv1.GetShipmentRequest{OrderId: id})
		if err != nil && status.Code(err) != codes.NotFound {
			return nil, fmt.Errorf("replay state: GetShipment %s: %w", id, err)
		}
		if os.Shipment, err = stateJSON(ship.GetShipment()); err != nil {
			return nil, err
		}
		if os.Notifications, err = notificationsOf(ctx, c, o.GetOrder().GetCustomerId(), id); err != nil {
			return nil, err
		}
		st.Orders[id] = os
	}
	for sku := range skus {
		s, err := c.Inventory.GetStock(ctx, &inventoryv1.GetStockRequest{Sku: sku})
		if err != nil && status.Code(err) != codes.NotFound {
			return nil, fmt.Errorf("replay state: GetStock %s: %w", sku, err)
		}
		if st.Stock[sku], err = stateJSON(s.GetStock()); err != nil {
			return nil, err
		}
	}
	return json.MarshalIndent(st, "", "  ")
}

// sortSteps orders the step history by time, then event type, then id.
// The order service keeps steps in arrival order, and events of different
// topics (a refund and a restock after SHIPMENT_FAILED) arrive in either
// order: the design promises no order across topics, so neither does the
// compared state.
func sortSteps(o *orderv1.Order) *orderv1.Order {
	if o == nil {
		return nil
	}
	o = proto.Clone(o).(*orderv1.Order)
	sort.SliceStable(o.Steps, func(i, j int) bool {
		a, b := o.Steps[i], o.Steps[j]
		if ta, tb := a.GetOccurredAt().AsTime(), b.GetOccurredAt().AsTime(); !ta.Equal(tb) {
			return ta.Before(tb)
		}
		if a.GetEventType() != b.GetEventType() {
			return a.GetEventType() < b.GetEventType()
		}
		return a.GetEventId() < b.GetEventId()
	})
	return o
}

// notificationsOf lists the customer's notifications about order id, all
// pages, in the service's order.
func notificationsOf(ctx context.Context, c suite.Clients, customerID, orderID string) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	token := ""
	for {
		resp, err := c.Notification.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{CustomerId: customerID, PageSize: 100, PageToken: token})
		if err != nil {
			return nil, fmt.Errorf("replay state: ListNotifications %s: %w", customerID, err)
		}
		for _, n := range resp.GetNotifications() {
			if n.GetOrderId() != orderID {
				continue
			}
			b, err := stateJSON(n)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
		if token = resp.GetNextPageToken(); token == "" {
			// Notifications of one instant (the replay's clock stands
			// still) come in arrival order, which crosses topics: sorted.
			sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i], out[j]) < 0 })
			return out, nil
		}
	}
}

// WriteResult writes res into dir: events.jsonl (a capture file of the
// normalized records, header from h with the replay's source) and
// state.json. Two replays of one recording write byte-identical files.
func WriteResult(dir string, h capture.Header, res *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out := capture.Header{Format: capture.Format, Version: capture.Version, EnvelopeSchemaVersion: events.SchemaVersion,
		Source: "replay:whole-suite", TopicPrefix: "", ToolVersion: h.ToolVersion, CapturedAt: h.CapturedAt, Seed: h.Seed}
	if err := capture.WriteFile(filepath.Join(dir, "events.jsonl"), out, res.Records); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "state.json"), append(append([]byte{}, res.State...), '\n'), 0o644)
}
