package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/logging"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// Handler applies one event. It must make its effect durable before it
// returns nil (the offset is committed after that), and be idempotent by event
// id (the inbox), since an event can arrive more than once.
//
// Errors have two classes. Permanent ones (wrap with Permanent; an envelope
// that does not decode, an unknown type, an unsupported schema version, a
// broken domain invariant) send the event to the dead-letter topic at once.
// Every other error is transient (store, broker, gateway, timeout, deadlock):
// the event is retried without limit, with capped exponential backoff, and
// only its key waits. So an outage never dead-letters a valid event, and a
// compensation is never dead-lettered for a transient cause.
type Handler func(ctx context.Context, env *eventsv1.Envelope) error

// ErrPermanent marks a handler error that retrying cannot fix: the event goes
// to the dead-letter topic at once. Wrap with Permanent.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so the consumer dead-letters the event without retrying.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// IsPermanent reports whether err is of the permanent class: marked with
// Permanent, or an invalid event (events.ErrInvalid).
func IsPermanent(err error) bool {
	return errors.Is(err, ErrPermanent) || errors.Is(err, events.ErrInvalid)
}

// ConsumerConfig configures a Consumer. Brokers, Group and Topics are required.
type ConsumerConfig struct {
	Brokers []string
	Group   string
	Topics  []string
	// DeadLetterTopic defaults to "<Group>.dlq"; it is created at start when
	// missing, with ReplicationFactor.
	DeadLetterTopic string
	// ReplicationFactor of the dead-letter topic: the cluster's, like the saga
	// topics (default 1, a single-broker cluster).
	ReplicationFactor int
	// StrictTopics dead-letters an event that arrives on a topic its type does
	// not belong to (events.TopicOf, matched as a suffix so prefixes work).
	StrictTopics bool
	// RetryInitial and RetryMax bound the backoff between attempts at an event
	// that failed transiently (defaults 50ms and 5s). There is no attempt limit.
	RetryInitial, RetryMax time.Duration
	// Workers is how many events run at once (default 32), each of a
	// different key; a key's events run one at a time, in order.
	Workers int
	// MaxInFlight bounds the records fetched and not yet finished, including
	// finished ones behind an unfinished one (default 10000).
	MaxInFlight int
	// MaxWait is how long a partition fetch waits at the broker for records
	// (default 5s); latency comes from MinBytes=1, not from this, and each
	// idle wait costs the broker one request. See fetch.go on the margin.
	MaxWait time.Duration
	// DrainTimeout bounds how long in-flight handlers may run after shutdown
	// or a revocation starts (default 10s); then their context is cancelled.
	DrainTimeout time.Duration
	// SessionTimeout is how soon the group notices a member that died
	// (default 6s, the broker's minimum by default).
	SessionTimeout time.Duration
	// Security is how the consumer connects (TLS, SASL); zero: plaintext.
	Security Security
	Logger   *slog.Logger
}

func (c *ConsumerConfig) setDefaults() error {
	if len(c.Brokers) == 0 || c.Group == "" || len(c.Topics) == 0 {
		return errors.New("bus: consumer needs brokers, group and topics")
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Group + ".dlq"
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 1
	}
	if c.RetryInitial <= 0 {
		c.RetryInitial = 50 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 32
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 10000
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 5 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 6 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Consumer runs a Handler over every event of its topics as one member of a
// consumer group: one reader per assigned partition, the scheduler's per-key
// queues, offsets committed per partition up to the first unfinished record.
type Consumer struct {
	cfg     ConsumerConfig
	handler Handler
	dlq     *Producer
	metrics consumerMetrics
	msgs    messagingMetrics
	ready   atomic.Bool

	commitWake chan struct{}
	partsMu    sync.Mutex
	parts      []*partition // of the current generation (lag gauge)
}

// NewConsumer checks cfg and returns a consumer; Run starts it.
func NewConsumer(cfg ConsumerConfig, h Handler) (*Consumer, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("bus: consumer needs a handler")
	}
	return &Consumer{
		cfg: cfg, handler: h, dlq: NewProducer(cfg.Brokers, WithSecurity(cfg.Security)), metrics: newConsumerMetrics(), msgs: newMessagingMetrics(),
		commitWake: make(chan struct{}, 1),
	}, nil
}

// Ready reports whether the consumer can work right now: it is a member of
// the group's current generation and reads its assigned partitions (none is
// fine: a group can have more members than partitions). False before the
// first join, during a rebalance, and while the broker cannot be reached.
func (c *Consumer) Ready() bool { return c.ready.Load() }

// Run consumes until ctx is cancelled, then stops fetching, lets in-flight
// handlers finish (bounded by DrainTimeout), commits what is done and leaves
// the group. Events fetched but not finished are not committed: the group
// delivers them again. Broker outages do not end Run: it rejoins when it can.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.dlq.Close()
	c.ensureDeadLetterTopic(ctx)
	// Join only once every topic exists: kafka-go's group leader asks for
	// metadata with auto-creation on, which on a broker that allows it
	// would create a missing topic with the broker's default partitions
	// before its owner creates it properly; without auto-creation the
	// group would get no partitions of that topic until a rebalance.
	if err := c.waitForTopics(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting: nothing consumed, nothing to commit
		}
		return fmt.Errorf("bus: consumer group %s: %w", c.cfg.Group, err)
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:      c.cfg.Group,
		Brokers: c.cfg.Brokers,
		Topics:  c.cfg.Topics,
		Dialer:  c.cfg.Security.Dialer(),
		// A new group starts at the beginning: events published before the
		// service first started are still part of sagas.
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: time.Second,
		SessionTimeout:    c.cfg.SessionTimeout,
		// How long the coordinator waits for known members to rejoin. After a
		// broker restart the members from before it never rejoin (they come
		// back as new members), so each rebalance waited the full 30 s default:
		// all five services were ready again only 31 s after Kafka was.
		// Revocation drains in milliseconds (fetches are interrupted; in-flight
		// handlers are short), well inside this.
		RebalanceTimeout:       10 * time.Second,
		JoinGroupBackoff:       250 * time.Millisecond, // the 5 s default delays every start and rebalance
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("bus: consumer group %s: %w", c.cfg.Group, err)
	}
	sched := newScheduler(c.cfg.Workers, c.cfg.MaxInFlight, c.process,
		cappedBackoff(c.cfg.RetryInitial, c.cfg.RetryMax), c.finished)
	if reg, err := c.metrics.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		group := metric.WithAttributes(attribute.String("group", c.cfg.Group))
		o.ObserveInt64(c.metrics.lag, c.lag(), group)
		o.ObserveInt64(c.metrics.retrying, sched.retrying.Load(), group)
		return nil
	}, c.metrics.lag, c.metrics.retrying); err == nil {
		defer reg.Unregister()
	}

	// Closing the group ends the current generation (its function drains
	// and commits first) and leaves the group.
	groupClosed := make(chan struct{})
	go func() {
		<-ctx.Done()
		group.Close()
		close(groupClosed)
	}()
	joinErrors := newThrottle(30 * time.Second)
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			c.ready.Store(false)
			if errors.Is(err, kafka.RebalanceInProgress) {
				continue // routine: another member joined or left
			}
			if n, ok := joinErrors.allow(); ok {
				c.cfg.Logger.WarnContext(ctx, "consumer group: cannot join yet; retrying", "group", c.cfg.Group,
					"error", err, "errors_since_last_log", n)
			}
			continue // the group backs off by itself (JoinGroupBackoff)
		}
		joinErrors.reset()
		c.runGeneration(ctx, gen, sched)
	}
	<-groupClosed
	sched.stop()
	return nil
}

func (c *Consumer) ensureDeadLetterTopic(ctx context.Context) {
	ensureCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	spec := TopicSpec{Name: c.cfg.DeadLetterTopic, Partitions: 1, ReplicationFactor: c.cfg.ReplicationFactor}
	if err := EnsureTopicsWith(ensureCtx, c.cfg.Brokers, c.cfg.Security, spec); err != nil {
		// The broker may be down right now, or topic creation forbidden: then
		// the topic must exist; dead-lettering keeps retrying until it does.
		c.cfg.Logger.WarnContext(ctx, "dead-letter topic not ensured", "topic", c.cfg.DeadLetterTopic, "error", err)
	}
}

// runGeneration reads the generation's partitions until it ends (rebalance,
// lost coordinator) or ctx ends, then drains and commits. It runs inside
// gen.Start, so the group joins the next generation only after the drain.
func (c *Consumer) runGeneration(ctx context.Context, gen *kafka.Generation, sched *scheduler) {
	finished := make(chan struct{})
	gen.Start(func(genCtx context.Context) {
		defer close(finished)
		runCtx, stopFetching := context.WithCancel(ctx)
		defer stopFetching()
		go func() {
			select {
			case <-genCtx.Done():
				stopFetching()
			case <-runCtx.Done():
			}
		}()
		handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
		defer cancelHandlers()

		var parts []*partition
		var readers sync.WaitGroup
		for topic, assigned := range gen.Assignments {
			for _, a := range assigned {
				p := &partition{topic: topic, id: a.ID, track: newPartitionTrack(max(a.Offset, -1)), ctx: handlerCtx}
				parts = append(parts, p)
				readers.Add(1)
				go func() {
					defer readers.Done()
					c.fetch(runCtx, p, a.Offset, sched)
				}()
			}
		}
		c.setPartitions(parts)
		c.ready.Store(true)
		c.cfg.Logger.InfoContext(ctx, "consumer group joined", "group", c.cfg.Group, "generation", gen.ID,
			"partitions", len(parts))

		for running := true; running; {
			select {
			case <-runCtx.Done():
				running = false
			case <-c.commitWake:
				c.commit(gen, parts)
			}
		}
		c.ready.Store(false)

		// Revoked or stopping: no new work; drop what waits, let what runs finish.
		readers.Wait()
		sched.closePartitions(parts)
		drained := make(chan struct{})
		go func() {
			for _, p := range parts {
				p.inflight.Wait()
			}
			close(drained)
		}()
		select {
		case <-drained:
		case <-time.After(c.cfg.DrainTimeout):
			c.cfg.Logger.Warn("drain timeout: cancelling in-flight handlers", "group", c.cfg.Group)
			cancelHandlers()
			<-drained
		}
		// Whatever finished while draining; the group may have moved on, then
		// those records simply come again (inboxes drop them).
		c.commit(gen, parts)
		c.setPartitions(nil)
	})
	<-finished
}

// finished records a finished record for the next commit.
func (c *Consumer) finished(d *delivery) {
	d.part.track.done(d.msg.Offset)
	select {
	case c.commitWake <- struct{}{}:
	default:
	}
}

// commit commits, in one request, every partition's finished prefix. Commits
// coalesce: while one is in flight, finished records accumulate for the next.
func (c *Consumer) commit(gen *kafka.Generation, parts []*partition) {
	offsets := map[string]map[int]int64{}
	type taken struct {
		p      *partition
		offset int64
	}
	var took []taken
	for _, p := range parts {
		if off, ok := p.track.committable(); ok {
			if offsets[p.topic] == nil {
				offsets[p.topic] = map[int]int64{}
			}
			offsets[p.topic][p.id] = off
			took = append(took, taken{p, off})
		}
	}
	if len(took) == 0 {
		return
	}
	if err := gen.CommitOffsets(offsets); err != nil {
		// Not fatal: the events come again and the inboxes drop them.
		c.cfg.Logger.Warn("commit offsets", "group", c.cfg.Group, "error", err)
		for _, t := range took {
			t.p.track.uncommit(t.offset)
		}
		return
	}
	c.metrics.commits.Add(context.Background(), 1, metric.WithAttributes(attribute.String("group", c.cfg.Group)))
}

func (c *Consumer) setPartitions(parts []*partition) {
	c.partsMu.Lock()
	c.parts = parts
	c.partsMu.Unlock()
}

// lag is, over the partitions this member reads, how many records lie
// between each partition's end and its first unfinished record.
func (c *Consumer) lag() int64 {
	c.partsMu.Lock()
	defer c.partsMu.Unlock()
	var total int64
	for _, p := range c.parts {
		total += p.track.lag()
	}
	return total
}

// process makes one attempt at a record: decode once, run the handler,
// classify its error. It never blocks on a retry: the scheduler waits out
// the backoff with the key set aside.
func (c *Consumer) process(d *delivery) outcome {
	ctx := d.part.ctx
	if ctx.Err() != nil {
		return abandoned
	}
	m := d.msg
	headers := fromKafkaHeaders(m.Headers)
	ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(headers))
	typeName := headers[HeaderType]
	// OpenTelemetry messaging conventions: "process <destination>", kind
	// CONSUMER. One record per handler call, so the span is a child of the
	// record's creation context (the producer's send span, in traceparent)
	// and, as the conventions ask, also links to it.
	startOpts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationName("process"),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingConsumerGroupName(c.cfg.Group),
			semconv.MessagingDestinationName(m.Topic),
			semconv.MessagingDestinationPartitionID(strconv.Itoa(m.Partition)),
			semconv.MessagingKafkaOffset(int(m.Offset)),
			semconv.MessagingKafkaMessageKey(string(m.Key)),
			semconv.MessagingMessageID(headers[HeaderEventID]),
			attribute.String("sagasuite.event_type", typeName),
			attribute.Int("sagasuite.attempt", d.attempts+1),
		),
	}
	if creation := trace.SpanContextFromContext(ctx); creation.IsValid() && creation.IsRemote() {
		startOpts = append(startOpts, trace.WithLinks(trace.Link{SpanContext: creation}))
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, "process "+m.Topic, startOpts...)
	defer span.End()
	// Built only when something is logged: With on every event cost
	// allocations on the hot path.
	log := func() *slog.Logger {
		return c.cfg.Logger.With("group", c.cfg.Group, "topic", m.Topic, "partition", m.Partition,
			"offset", m.Offset, "event_type", typeName, "event_id", headers[HeaderEventID], "order_id", string(m.Key))
	}

	if d.attempts == 0 {
		c.msgs.consumedMessage(ctx, c.cfg.Group, m.Topic, typeName)
	}
	if d.env == nil {
		env, err := c.decode(m)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
			log().WarnContext(ctx, "malformed event dead-lettered", "error", err)
			return c.deadLetter(ctx, d, headers, err)
		}
		d.env = env
	}
	typeName = events.TypeName(d.env.GetType())
	start := time.Now()
	// The handler's lines name the saga and the event (libs/logging adds them).
	err := c.invoke(logging.ContextWithEvent(ctx, d.env.GetOrderId(), d.env.GetEventId()), d.env)
	elapsed := time.Since(start)
	c.metrics.record(ctx, c.cfg.Group, typeName, err, elapsed)
	c.msgs.processed(ctx, c.cfg.Group, m.Topic, typeName, err, elapsed)
	if err == nil {
		if d.attempts > 0 {
			log().InfoContext(ctx, "event handled after retries", "attempts", d.attempts+1)
		}
		return finished
	}
	span.RecordError(err)
	if d.part.ctx.Err() != nil {
		return abandoned // cancelled by the drain timeout: it comes again
	}
	if IsPermanent(err) {
		span.SetStatus(codes.Error, err.Error())
		log().ErrorContext(ctx, "event dead-lettered", "attempts", d.attempts+1, "error", err)
		return c.deadLetter(ctx, d, headers, err)
	}
	c.metrics.retries.Add(ctx, 1, metric.WithAttributes(attribute.String("group", c.cfg.Group), attribute.String("event_type", typeName)))
	log().WarnContext(ctx, "handler failed transiently; retrying this key", "attempt", d.attempts+1, "error", err)
	return retry
}

func (c *Consumer) decode(m kafka.Message) (*eventsv1.Envelope, error) {
	env, err := events.Decode(m.Value)
	if err != nil {
		return nil, err
	}
	if c.cfg.StrictTopics {
		want, _ := events.TopicOf(env.GetType()) // Decode checked the type
		if !strings.HasSuffix(m.Topic, want) {
			return nil, fmt.Errorf("%w: %s does not belong on topic %s", events.ErrInvalid, events.TypeName(env.GetType()), m.Topic)
		}
	}
	return env, nil
}

// invoke runs the handler, turning a panic into a permanent error so one bad
// event cannot take the service down: a panic on an input repeats on every
// retry, so the event is dead-lettered (and can be redriven once fixed)
// rather than holding its key for ever.
func (c *Consumer) invoke(ctx context.Context, env *eventsv1.Envelope) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("handler panic: %v\n%s", r, debug.Stack()))
		}
	}()
	return c.handler(ctx, env)
}

// deadLetter publishes the original record with the reason to the DLQ. It
// keeps trying until it succeeds or the partition is given up, since
// committing the offset without a DLQ copy would lose the event.
func (c *Consumer) deadLetter(ctx context.Context, d *delivery, headers map[string]string, cause error) outcome {
	m := d.msg
	h := make(map[string]string, len(headers)+7)
	for k, v := range headers {
		h[k] = v
	}
	h[HeaderDLQError] = cause.Error()
	h[HeaderDLQTopic] = m.Topic
	h[HeaderDLQPartition] = strconv.Itoa(m.Partition)
	h[HeaderDLQOffset] = strconv.FormatInt(m.Offset, 10)
	h[HeaderDLQGroup] = c.cfg.Group
	h[HeaderDLQAttempts] = strconv.Itoa(d.attempts + 1)
	h[HeaderDLQAt] = time.Now().UTC().Format(time.RFC3339Nano)
	msg := Message{Topic: c.cfg.DeadLetterTopic, Key: string(m.Key), Headers: h, Value: m.Value}
	next := cappedBackoff(c.cfg.RetryInitial, c.cfg.RetryMax)
	for attempt := 1; ; attempt++ {
		err := c.dlq.Publish(ctx, msg)
		if err == nil {
			c.metrics.deadLettered.Add(ctx, 1, metric.WithAttributes(attribute.String("group", c.cfg.Group)))
			return finished
		}
		c.cfg.Logger.ErrorContext(ctx, "publish to dead-letter topic", "topic", c.cfg.DeadLetterTopic, "error", err)
		select {
		case <-d.part.ctx.Done():
			return abandoned
		case <-time.After(next(attempt)):
		}
		if d.part.closed.Load() {
			return abandoned
		}
	}
}

// throttle lets a repeating log line through at most once per interval and
// counts what it held back.
type throttle struct {
	every      time.Duration
	last       time.Time
	suppressed int
}

func newThrottle(every time.Duration) *throttle { return &throttle{every: every} }

func (t *throttle) allow() (suppressed int, ok bool) {
	if now := time.Now(); now.Sub(t.last) >= t.every {
		n := t.suppressed
		t.last, t.suppressed = now, 0
		return n, true
	}
	t.suppressed++
	return 0, false
}

func (t *throttle) reset() { t.last, t.suppressed = time.Time{}, 0 }

type consumerMetrics struct {
	meter        metric.Meter
	lag          metric.Int64ObservableGauge
	retrying     metric.Int64ObservableGauge
	handled      metric.Int64Counter
	duration     metric.Float64Histogram
	retries      metric.Int64Counter
	deadLettered metric.Int64Counter
	commits      metric.Int64Counter
	readerDials  metric.Int64Counter
	readerErrors metric.Int64Counter
}

func newConsumerMetrics() consumerMetrics {
	meter := otel.Meter(tracerName)
	handled, _ := meter.Int64Counter("sagasuite.bus.handled", metric.WithDescription("handler runs by outcome"))
	duration, _ := meter.Float64Histogram("sagasuite.bus.handler.duration", metric.WithUnit("s"))
	retries, _ := meter.Int64Counter("sagasuite.bus.retries", metric.WithDescription("handler attempts that failed transiently and will be retried"))
	dead, _ := meter.Int64Counter("sagasuite.bus.dead_lettered", metric.WithDescription("events sent to a dead-letter topic"))
	commits, _ := meter.Int64Counter("sagasuite.bus.offset_commits", metric.WithDescription("offset commit requests that succeeded"))
	dials, _ := meter.Int64Counter("sagasuite.bus.fetch.dials", metric.WithDescription("connections partition fetchers opened: one per assignment, more is reconnect churn"))
	readerErrors, _ := meter.Int64Counter("sagasuite.bus.fetch.errors", metric.WithDescription("partition fetches that failed (the connection is then redialled)"))
	lag, _ := meter.Int64ObservableGauge("sagasuite.bus.consumer.lag",
		metric.WithDescription("records fetched or waiting that this group member has not finished"))
	retrying, _ := meter.Int64ObservableGauge("sagasuite.bus.retrying_keys",
		metric.WithDescription("keys (orders) whose next event waits out a retry backoff"))
	return consumerMetrics{meter: meter, lag: lag, retrying: retrying, handled: handled, duration: duration,
		retries: retries, deadLettered: dead, commits: commits, readerDials: dials, readerErrors: readerErrors}
}

func (m consumerMetrics) record(ctx context.Context, group, typeName string, err error, d time.Duration) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	attrs := metric.WithAttributes(attribute.String("group", group), attribute.String("event_type", typeName), attribute.String("outcome", outcome))
	m.handled.Add(ctx, 1, attrs)
	m.duration.Record(ctx, d.Seconds(), attrs)
}

// DeadLetterTopic is where this consumer's dead letters go.
func (c *Consumer) DeadLetterTopic() string { return c.cfg.DeadLetterTopic }
