package bus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// Handler applies one event. It must make its effect durable before it
// returns nil (the offset is committed after that), and be idempotent by event
// id (the inbox), since an event can arrive more than once.
type Handler func(ctx context.Context, env *eventsv1.Envelope) error

// ErrPermanent marks a handler error that retrying cannot fix: the event goes
// to the dead-letter topic at once. Wrap with Permanent.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so the consumer dead-letters the event without retrying.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// ConsumerConfig configures a Consumer. Brokers, Group and Topics are required.
type ConsumerConfig struct {
	Brokers []string
	Group   string
	Topics  []string
	// DeadLetterTopic defaults to "<Group>.dlq"; it is created at start when missing.
	DeadLetterTopic string
	// MaxAttempts is how many times a handler runs for one event before the
	// event is dead-lettered (default 5).
	MaxAttempts int
	// RetryInitial and RetryMax bound the exponential backoff between attempts
	// (defaults 50ms and 2s).
	RetryInitial, RetryMax time.Duration
	// Workers is how many events run at once (default 8). Events with the same
	// key always go to the same worker, so each saga's events keep their order.
	Workers int
	// DrainTimeout bounds how long in-flight handlers may run after shutdown
	// starts (default 10s); then their context is cancelled.
	DrainTimeout time.Duration
	// SessionTimeout is how soon the group notices a member that died
	// (default 6s, the broker's minimum by default).
	SessionTimeout time.Duration
	Logger         *slog.Logger
}

func (c *ConsumerConfig) setDefaults() error {
	if len(c.Brokers) == 0 || c.Group == "" || len(c.Topics) == 0 {
		return errors.New("bus: consumer needs brokers, group and topics")
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Group + ".dlq"
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.RetryInitial <= 0 {
		c.RetryInitial = 50 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 2 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 8
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

// Consumer runs a Handler over every event of its topics as one consumer group.
type Consumer struct {
	cfg     ConsumerConfig
	handler Handler
	dlq     *Producer
	metrics consumerMetrics
	ready   atomic.Bool
}

// NewConsumer checks cfg and returns a consumer; Run starts it.
func NewConsumer(cfg ConsumerConfig, h Handler) (*Consumer, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("bus: consumer needs a handler")
	}
	return &Consumer{cfg: cfg, handler: h, dlq: NewProducer(cfg.Brokers), metrics: newConsumerMetrics()}, nil
}

// Ready reports whether the consumer is running (for readiness probes).
func (c *Consumer) Ready() bool { return c.ready.Load() }

// Run consumes until ctx is cancelled, then stops fetching, lets in-flight
// handlers finish (bounded by DrainTimeout), commits what is done and leaves
// the group. Events fetched but not finished are not committed: the group
// delivers them again.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.dlq.Close()
	if err := EnsureTopics(ctx, c.cfg.Brokers, TopicSpec{Name: c.cfg.DeadLetterTopic, Partitions: 1, ReplicationFactor: 1}); err != nil {
		// Where the cluster forbids topic creation the topic must exist already;
		// publishing to it will say so if it does not.
		c.cfg.Logger.WarnContext(ctx, "dead-letter topic not ensured", "topic", c.cfg.DeadLetterTopic, "error", err)
	}
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     c.cfg.Brokers,
		GroupID:     c.cfg.Group,
		GroupTopics: c.cfg.Topics,
		// A new group starts at the beginning: events published before the
		// service first started are still part of sagas.
		StartOffset:    kafka.FirstOffset,
		MinBytes:       1,
		MaxBytes:       10 << 20,
		MaxWait:        250 * time.Millisecond,
		CommitInterval: 0, // commit synchronously, after the effect
		// The 5 s default delays every start and rebalance.
		JoinGroupBackoff:      250 * time.Millisecond,
		HeartbeatInterval:     time.Second,
		SessionTimeout:        c.cfg.SessionTimeout,
		RebalanceTimeout:      10 * time.Second,
		ReadBackoffMin:        10 * time.Millisecond,
		ReadBackoffMax:        250 * time.Millisecond,
		WatchPartitionChanges: true,
	})

	// processCtx outlives ctx by DrainTimeout so in-flight handlers can finish.
	processCtx, cancelProcess := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelProcess()
	var stopping atomic.Bool

	track := newOffsetTracker()
	if reg, err := c.metrics.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(c.metrics.lag, track.lag(), metric.WithAttributes(attribute.String("group", c.cfg.Group)))
		return nil
	}, c.metrics.lag); err == nil {
		defer reg.Unregister()
	}
	commitWake := make(chan struct{}, 1)
	workers := make([]chan kafka.Message, c.cfg.Workers)
	var wg sync.WaitGroup
	for i := range workers {
		workers[i] = make(chan kafka.Message, 64)
		wg.Add(1)
		go func(in <-chan kafka.Message) {
			defer wg.Done()
			for m := range in {
				if stopping.Load() {
					continue // not started: leave it uncommitted for redelivery
				}
				if c.process(processCtx, &stopping, m) {
					track.done(m)
					select {
					case commitWake <- struct{}{}:
					default:
					}
				}
			}
		}(workers[i])
	}

	committerDone := make(chan struct{})
	go func() {
		defer close(committerDone)
		for range commitWake {
			c.commit(processCtx, reader, track)
		}
	}()

	// Ready once the group member runs: an idle topic has nothing to fetch.
	c.ready.Store(true)
	var fetchErr error
	for {
		m, err := reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			// Fetch errors (coordinator moves, rebalances, broker restarts)
			// are retried by the reader; log and go on.
			c.cfg.Logger.WarnContext(ctx, "fetch", "group", c.cfg.Group, "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		track.fetched(m)
		workers[workerFor(m.Key, len(workers))] <- m
	}
	c.ready.Store(false)

	// Drain: stop taking new work, finish what runs, bounded.
	stopping.Store(true)
	for _, w := range workers {
		close(w)
	}
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(c.cfg.DrainTimeout):
		c.cfg.Logger.Warn("drain timeout: cancelling in-flight handlers", "group", c.cfg.Group)
		cancelProcess()
		<-drained
	}
	close(commitWake)
	<-committerDone
	// A last commit of whatever finished after the committer's final pass.
	finalCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	c.commit(finalCtx, reader, track)
	cancel()
	if err := reader.Close(); err != nil {
		fetchErr = errors.Join(fetchErr, fmt.Errorf("close reader: %w", err))
	}
	return fetchErr
}

func (c *Consumer) commit(ctx context.Context, reader *kafka.Reader, track *offsetTracker) {
	msgs := track.committable()
	if len(msgs) == 0 {
		return
	}
	if err := reader.CommitMessages(ctx, msgs...); err != nil {
		// Not fatal: the events are redelivered and the inbox drops them.
		c.cfg.Logger.Warn("commit offsets", "group", c.cfg.Group, "error", err)
	}
}

// process runs the handler with retries, dead-lettering on permanent failure
// or exhausted attempts. It reports whether the message is finished (handled
// or dead-lettered), i.e. its offset may be committed.
func (c *Consumer) process(ctx context.Context, stopping *atomic.Bool, m kafka.Message) bool {
	headers := fromKafkaHeaders(m.Headers)
	ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(headers))
	typeName := headers[HeaderType]
	ctx, span := otel.Tracer(tracerName).Start(ctx, "process "+typeName,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.consumer.group.name", c.cfg.Group),
			attribute.String("messaging.destination.name", m.Topic),
			attribute.Int("messaging.destination.partition.id", m.Partition),
			attribute.Int64("messaging.kafka.offset", m.Offset),
			attribute.String("messaging.message.id", headers[HeaderEventID]),
			attribute.String("sagasuite.order_id", string(m.Key)),
		))
	defer span.End()
	log := c.cfg.Logger.With("group", c.cfg.Group, "topic", m.Topic, "partition", m.Partition,
		"offset", m.Offset, "event_type", typeName, "event_id", headers[HeaderEventID], "order_id", string(m.Key))

	env, err := events.Unmarshal(m.Value)
	if err != nil {
		log.WarnContext(ctx, "malformed event", "error", err)
		return c.deadLetter(ctx, stopping, m, headers, err, 0)
	}
	typeName = events.TypeName(env.GetType())
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = c.cfg.RetryInitial, c.cfg.RetryMax
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := c.invoke(ctx, env)
		c.metrics.record(ctx, c.cfg.Group, typeName, err, time.Since(start))
		if err == nil {
			return true
		}
		span.RecordError(err)
		if errors.Is(err, ErrPermanent) || errors.Is(err, events.ErrInvalid) || attempt >= c.cfg.MaxAttempts {
			span.SetStatus(codes.Error, err.Error())
			log.ErrorContext(ctx, "event dead-lettered", "attempts", attempt, "error", err)
			return c.deadLetter(ctx, stopping, m, headers, err, attempt)
		}
		log.WarnContext(ctx, "handler failed; retrying", "attempt", attempt, "error", err)
		if !sleep(ctx, stopping, bo.NextBackOff()) {
			return false
		}
	}
}

// invoke runs the handler, turning a panic into an error so one bad event
// cannot take the service down.
func (c *Consumer) invoke(ctx context.Context, env *eventsv1.Envelope) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v\n%s", r, debug.Stack())
		}
	}()
	return c.handler(ctx, env)
}

// deadLetter publishes the original record with the reason to the DLQ. It
// keeps trying until it succeeds or the consumer stops, since committing the
// offset without a DLQ copy would lose the event.
func (c *Consumer) deadLetter(ctx context.Context, stopping *atomic.Bool, m kafka.Message, headers map[string]string, cause error, attempts int) bool {
	h := make(map[string]string, len(headers)+7)
	for k, v := range headers {
		h[k] = v
	}
	h[HeaderDLQError] = cause.Error()
	h[HeaderDLQTopic] = m.Topic
	h[HeaderDLQPartition] = strconv.Itoa(m.Partition)
	h[HeaderDLQOffset] = strconv.FormatInt(m.Offset, 10)
	h[HeaderDLQGroup] = c.cfg.Group
	h[HeaderDLQAttempts] = strconv.Itoa(attempts)
	h[HeaderDLQAt] = time.Now().UTC().Format(time.RFC3339Nano)
	msg := Message{Topic: c.cfg.DeadLetterTopic, Key: string(m.Key), Headers: h, Value: m.Value}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = c.cfg.RetryInitial, c.cfg.RetryMax
	for {
		err := c.dlq.Publish(ctx, msg)
		if err == nil {
			c.metrics.deadLettered.Add(ctx, 1, metric.WithAttributes(attribute.String("group", c.cfg.Group)))
			return true
		}
		c.cfg.Logger.ErrorContext(ctx, "publish to dead-letter topic", "topic", c.cfg.DeadLetterTopic, "error", err)
		if !sleep(ctx, stopping, bo.NextBackOff()) {
			return false
		}
	}
}

// sleep waits d unless the consumer is stopping; it reports whether to go on.
func sleep(ctx context.Context, stopping *atomic.Bool, d time.Duration) bool {
	if stopping.Load() {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return !stopping.Load()
	}
}

func workerFor(key []byte, n int) int {
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(n))
}

type consumerMetrics struct {
	meter        metric.Meter
	lag          metric.Int64ObservableGauge
	handled      metric.Int64Counter
	duration     metric.Float64Histogram
	deadLettered metric.Int64Counter
}

func newConsumerMetrics() consumerMetrics {
	meter := otel.Meter(tracerName)
	handled, _ := meter.Int64Counter("sagasuite.bus.handled", metric.WithDescription("handler runs by outcome"))
	duration, _ := meter.Float64Histogram("sagasuite.bus.handler.duration", metric.WithUnit("s"))
	dead, _ := meter.Int64Counter("sagasuite.bus.dead_lettered", metric.WithDescription("events sent to a dead-letter topic"))
	lag, _ := meter.Int64ObservableGauge("sagasuite.bus.consumer.lag",
		metric.WithDescription("records fetched or waiting that this group member has not finished"))
	return consumerMetrics{meter: meter, lag: lag, handled: handled, duration: duration, deadLettered: dead}
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
