package bus_test

// Integration tests against the real Kafka of the local stack (make infra-up).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/telemetry/telemetrytest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

var spanRecorder = tracetest.NewSpanRecorder()

func TestMain(m *testing.M) {
	// A real SDK provider, so trace ids exist and propagate through headers;
	// it records ended spans in memory for the span tests (which filter by
	// their own topic: tests share the global provider).
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spanRecorder)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	os.Exit(m.Run())
}

// newTopic creates a fresh topic with the given partitions.
func newTopic(t testing.TB, partitions int) string {
	t.Helper()
	name := testenv.UniqueName("test.bus.")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.EnsureTopics(ctx, testenv.Brokers(), bus.TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: 1}); err != nil {
		t.Fatalf("Kafka for tests (SAGASUITE_KAFKA_BROKERS; run `make infra-up`): %v", err)
	}
	return name
}

// envelope makes a valid event for orderID whose id derives from cause.
func envelope(t testing.TB, orderID, cause string) *eventsv1.Envelope {
	t.Helper()
	env, err := events.New(events.Meta{
		OrderID: orderID, CustomerID: events.NewID(), Producer: "test",
		CausationID: testenv.IDFor(cause), OccurredAt: time.Now(),
	}, &eventsv1.OrderCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// encodeTo encodes env for topic (tests use their own topics, not orders.v1).
func encodeTo(t testing.TB, ctx context.Context, topic string, env *eventsv1.Envelope) bus.Message {
	t.Helper()
	m, err := bus.EncodeEnvelope(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	m.Topic = topic
	return m
}

// run starts c and returns a stop function that cancels it and waits.
func run(t testing.TB, c *bus.Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("consumer Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("consumer did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func consumerConfig(topic string) bus.ConsumerConfig {
	return bus.ConsumerConfig{
		Brokers: testenv.Brokers(), Group: testenv.UniqueName("test-group-"), Topics: []string{topic},
		RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}
}

// readAll reads n records of a topic's partition 0 from the start.
func readAll(t testing.TB, topic string, n int) []kafka.Message {
	t.Helper()
	return readPartition(t, topic, 0, n)
}

// readPartition reads n records of one partition from the start.
func readPartition(t testing.TB, topic string, partition, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: testenv.Brokers(), Topic: topic, Partition: partition, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s: got %d of %d records: %v", topic, len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestRoundTripKeepsPerKeyOrderHeadersAndTrace(t *testing.T) {
	topic := newTopic(t, 3)
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()

	ctx, span := otel.Tracer("test").Start(context.Background(), "saga")
	defer span.End()
	const keys, perKey = 6, 25
	seqOf := map[string]int{} // event id -> position within its key
	var msgs []bus.Message
	for k := 0; k < keys; k++ {
		order := events.NewID()
		for i := 0; i < perKey; i++ {
			env := envelope(t, order, fmt.Sprintf("%s-%d", order, i))
			seqOf[env.GetEventId()] = i
			msgs = append(msgs, encodeTo(t, ctx, topic, env))
		}
	}
	if err := producer.Publish(ctx, msgs...); err != nil {
		t.Fatalf("publish: %v", err)
	}

	var mu sync.Mutex
	lastSeq := map[string]int{}
	var outOfOrder []string
	traceIDs := map[trace.TraceID]bool{}
	received := 0
	c, err := bus.NewConsumer(consumerConfig(topic), func(ctx context.Context, env *eventsv1.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		seq := seqOf[env.GetEventId()]
		if last, ok := lastSeq[env.GetOrderId()]; ok && seq <= last {
			outOfOrder = append(outOfOrder, fmt.Sprintf("%s: %d after %d", env.GetOrderId(), seq, last))
		}
		lastSeq[env.GetOrderId()] = seq
		traceIDs[trace.SpanContextFromContext(ctx).TraceID()] = true
		received++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitFor(t, "all events", func() bool { mu.Lock(); defer mu.Unlock(); return received >= keys*perKey })

	mu.Lock()
	defer mu.Unlock()
	if received != keys*perKey {
		t.Errorf("received %d events, want %d", received, keys*perKey)
	}
	if len(outOfOrder) > 0 {
		t.Errorf("per-key order broken: %v", outOfOrder)
	}
	if len(traceIDs) != 1 || !traceIDs[span.SpanContext().TraceID()] {
		t.Errorf("handler trace ids %v, want only the publisher's %s", traceIDs, span.SpanContext().TraceID())
	}

	// Headers on the wire: type, id and traceparent. Read the partition the
	// first key hashes to (some of the 3 may hold none of the 6 keys).
	partition := (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(msgs[0].Key)}, 0, 1, 2)
	rec := readPartition(t, topic, partition, 1)[0]
	if header(rec, bus.HeaderType) != "ORDER_COMPLETED" || header(rec, bus.HeaderEventID) == "" ||
		!strings.Contains(header(rec, bus.HeaderTraceparent), span.SpanContext().TraceID().String()) {
		t.Errorf("headers %v lack type, id or the trace", rec.Headers)
	}
}

// Permanent failures (a Permanent error, a panic, a record that is no
// envelope) go to the dead-letter topic at once; a transient failure is
// retried without limit and never dead-lettered, holding back only its own key.
func TestPermanentFailuresAreDeadLetteredAtOnceTransientOnesRetriedUntilTheyPass(t *testing.T) {
	topic := newTopic(t, 1)
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()
	ctx := context.Background()

	rejected := envelope(t, events.NewID(), "rejected")
	panicking := envelope(t, events.NewID(), "panicking")
	flaky := envelope(t, events.NewID(), "flaky")
	flakyLater := envelope(t, flaky.GetOrderId(), "flaky-later") // same key: must wait for flaky
	msgs := []bus.Message{encodeTo(t, ctx, topic, flaky), encodeTo(t, ctx, topic, flakyLater),
		encodeTo(t, ctx, topic, rejected), encodeTo(t, ctx, topic, panicking)}
	var after []*eventsv1.Envelope
	for i := 0; i < 5; i++ {
		env := envelope(t, events.NewID(), fmt.Sprintf("after-%d", i))
		after = append(after, env)
		msgs = append(msgs, encodeTo(t, ctx, topic, env))
	}
	// A record that is not an envelope at all: dead-lettered without a handler call.
	msgs = append(msgs, bus.Message{Topic: topic, Key: "garbage", Value: []byte("not protobuf"), Headers: map[string]string{}})
	if err := producer.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	order := []string{}
	var rejectedRuns, flakyRuns, okCount atomic.Int32
	healed := make(chan struct{})
	c, err := bus.NewConsumer(consumerConfig(topic), func(ctx context.Context, env *eventsv1.Envelope) error {
		switch env.GetEventId() {
		case rejected.GetEventId():
			rejectedRuns.Add(1)
			return bus.Permanent(errors.New("downstream says no"))
		case panicking.GetEventId():
			panic("handler bug") // never a crash: dead-lettered with the panic
		case flaky.GetEventId():
			flakyRuns.Add(1)
			select {
			case <-healed:
			default:
				return errors.New("store unavailable") // transient: retried for as long as it takes
			}
		}
		mu.Lock()
		order = append(order, env.GetEventId())
		mu.Unlock()
		okCount.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitFor(t, "the other keys' events while flaky fails", func() bool { return okCount.Load() == int32(len(after)) })
	waitFor(t, "flaky to be retried many times", func() bool { return flakyRuns.Load() >= 10 })
	mu.Lock()
	for _, id := range order {
		if id == flakyLater.GetEventId() {
			t.Errorf("flaky's later event ran before flaky succeeded")
		}
	}
	mu.Unlock()
	close(healed)
	waitFor(t, "flaky and its later event", func() bool { return okCount.Load() == int32(len(after))+2 })
	mu.Lock()
	if n := len(order); order[n-2] != flaky.GetEventId() || order[n-1] != flakyLater.GetEventId() {
		t.Errorf("flaky's events finished out of order: %v", order[n-2:])
	}
	mu.Unlock()

	dead := readAll(t, c.DeadLetterTopic(), 3)
	byKey := map[string]kafka.Message{}
	for _, m := range dead {
		byKey[string(m.Key)] = m
	}
	if _, ok := byKey[flaky.GetOrderId()]; ok {
		t.Errorf("a transient failure was dead-lettered")
	}
	if got := rejectedRuns.Load(); got != 1 {
		t.Errorf("permanent failure ran %d times, want 1", got)
	}
	p := byKey[rejected.GetOrderId()]
	if header(p, bus.HeaderDLQAttempts) != "1" || !strings.Contains(header(p, bus.HeaderDLQError), "downstream says no") ||
		header(p, bus.HeaderDLQTopic) != topic || header(p, bus.HeaderEventID) != rejected.GetEventId() {
		t.Errorf("rejected DLQ record headers %v", p.Headers)
	}
	if pn := byKey[panicking.GetOrderId()]; !strings.Contains(header(pn, bus.HeaderDLQError), "handler panic") {
		t.Errorf("panicking DLQ record headers %v", pn.Headers)
	}
	g := byKey["garbage"]
	if !strings.Contains(header(g, bus.HeaderDLQError), "decode envelope") || string(g.Value) != "not protobuf" {
		t.Errorf("malformed DLQ record: headers %v value %q", g.Headers, g.Value)
	}
}

// A key that keeps failing never lets the committed offset pass it: a new
// member (after a restart) gets it again, and not the events finished before it.
func TestARetryingKeyHoldsTheCommittedOffset(t *testing.T) {
	topic := newTopic(t, 1)
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()
	ctx := context.Background()
	before := envelope(t, events.NewID(), "before")
	stuck := envelope(t, events.NewID(), "stuck")
	behind := envelope(t, events.NewID(), "behind")
	if err := producer.Publish(ctx, encodeTo(t, ctx, topic, before), encodeTo(t, ctx, topic, stuck), encodeTo(t, ctx, topic, behind)); err != nil {
		t.Fatal(err)
	}
	cfg := consumerConfig(topic)
	var mu sync.Mutex
	seen := map[string]int{}
	handler := func(fail bool) bus.Handler {
		return func(ctx context.Context, env *eventsv1.Envelope) error {
			mu.Lock()
			defer mu.Unlock()
			seen[env.GetEventId()]++
			if fail && env.GetEventId() == stuck.GetEventId() {
				return errors.New("still down")
			}
			return nil
		}
	}
	c1, err := bus.NewConsumer(cfg, handler(true))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c1)
	waitFor(t, "before and behind handled, stuck retried", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen[before.GetEventId()] == 1 && seen[behind.GetEventId()] == 1 && seen[stuck.GetEventId()] >= 3
	})
	stop()
	c2, err := bus.NewConsumer(cfg, handler(false))
	if err != nil {
		t.Fatal(err)
	}
	stuckRuns := func() int { mu.Lock(); defer mu.Unlock(); return seen[stuck.GetEventId()] }
	runsBefore := stuckRuns()
	run(t, c2)
	waitFor(t, "stuck handled by the new member", func() bool { return stuckRuns() > runsBefore })
	waitFor(t, "behind redelivered (it lies after the uncommitted stuck one)", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen[behind.GetEventId()] == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if seen[before.GetEventId()] != 1 {
		t.Errorf("an event committed before the stuck one came again (%d runs)", seen[before.GetEventId()])
	}
}

// Ready means joined with partitions assigned, not merely started.
func TestConsumerIsReadyOnlyOnceItHasJoined(t *testing.T) {
	topic := newTopic(t, 2)
	handled := make(chan struct{}, 1)
	c, err := bus.NewConsumer(consumerConfig(topic), func(ctx context.Context, env *eventsv1.Envelope) error {
		select {
		case handled <- struct{}{}:
		default:
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Ready() {
		t.Fatal("ready before Run")
	}
	stop := run(t, c)
	waitFor(t, "ready after joining", c.Ready)
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()
	ctx := context.Background()
	if err := producer.Publish(ctx, encodeTo(t, ctx, topic, envelope(t, events.NewID(), "ready"))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-time.After(2 * time.Minute):
		t.Fatal("no event handled by a ready consumer")
	}
	stop()
	if c.Ready() {
		t.Error("still ready after Run returned")
	}
}

func TestCommittedEventsAreNotRedeliveredAndShutdownDrainsInFlight(t *testing.T) {
	topic := newTopic(t, 2)
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()
	ctx := context.Background()
	publish := func(n int, tag string) map[string]bool {
		ids := map[string]bool{}
		var msgs []bus.Message
		for i := 0; i < n; i++ {
			env := envelope(t, events.NewID(), fmt.Sprintf("%s-%d", tag, i))
			ids[env.GetEventId()] = true
			msgs = append(msgs, encodeTo(t, ctx, topic, env))
		}
		if err := producer.Publish(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	cfg := consumerConfig(topic)

	first := publish(20, "first")
	var mu sync.Mutex
	seen := map[string]int{}
	slowStarted := make(chan struct{})
	var slowFinished atomic.Bool
	handler := func(slowID string) bus.Handler {
		return func(ctx context.Context, env *eventsv1.Envelope) error {
			if env.GetEventId() == slowID {
				close(slowStarted)
				time.Sleep(500 * time.Millisecond) // still running when shutdown starts
				slowFinished.Store(true)
			}
			mu.Lock()
			seen[env.GetEventId()]++
			mu.Unlock()
			return nil
		}
	}
	slow := envelope(t, events.NewID(), "slow")
	c1, err := bus.NewConsumer(cfg, handler(slow.GetEventId()))
	if err != nil {
		t.Fatal(err)
	}
	stop1 := run(t, c1)
	waitFor(t, "first batch", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == len(first) })
	if err := producer.Publish(ctx, encodeTo(t, ctx, topic, slow)); err != nil {
		t.Fatal(err)
	}
	<-slowStarted
	stop1() // must wait for the slow handler and commit it
	if !slowFinished.Load() {
		t.Fatalf("shutdown returned before the in-flight handler finished")
	}

	second := publish(10, "second")
	c2, err := bus.NewConsumer(cfg, handler("none"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, c2)
	waitFor(t, "second batch", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for id := range second {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s handled %d times; committed events must not come back", id, n)
		}
	}
	if seen[slow.GetEventId()] != 1 {
		t.Errorf("slow event handled %d times, want 1", seen[slow.GetEventId()])
	}
}

// BenchmarkRoundTrip measures publish → group consumer handler latency, one
// event at a time (a saga hop without the store). Reports p50/p99 in µs.
func BenchmarkRoundTrip(b *testing.B) {
	topic := newTopic(b, 1)
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()
	got := make(chan string, 1)
	c, err := bus.NewConsumer(consumerConfig(topic), func(ctx context.Context, env *eventsv1.Envelope) error {
		got <- env.GetEventId()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	run(b, c)
	ctx := context.Background()
	order := events.NewID()
	send := func(i int) time.Duration {
		env := envelope(b, order, fmt.Sprintf("bench-%d", i))
		start := time.Now()
		if err := producer.Publish(ctx, encodeTo(b, ctx, topic, env)); err != nil {
			b.Fatal(err)
		}
		for id := range got {
			if id == env.GetEventId() {
				break
			}
		}
		return time.Since(start)
	}
	send(-1) // joins the group before timing
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = append(lat, send(i))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// The lag gauge counts what the member has not finished, and drains to 0.
func TestConsumerLagGauge(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	t.Cleanup(func() { otel.SetMeterProvider(noop.NewMeterProvider()) })
	topic := newTopic(t, 1)
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()
	ctx := context.Background()
	order := events.NewID()
	var msgs []bus.Message
	for i := 0; i < 5; i++ {
		msgs = append(msgs, encodeTo(t, ctx, topic, envelope(t, order, fmt.Sprintf("lag-%d", i))))
	}
	if err := producer.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	c, err := bus.NewConsumer(consumerConfig(topic), func(ctx context.Context, env *eventsv1.Envelope) error {
		<-release
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	lag := func() int64 {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == "sagasuite.bus.consumer.lag" && len(g.DataPoints) == 1 {
					return g.DataPoints[0].Value
				}
			}
		}
		return -1
	}
	waitFor(t, "lag 5 while the handler is held", func() bool { return lag() == 5 })
	close(release)
	waitFor(t, "lag 0 once all are handled", func() bool { return lag() == 0 })
}

// Two members of one group share the partitions; when the second leaves
// mid-stream (a rolling update), its partitions move back to the first: every
// event is handled, none lost, and each member ends up ready.
func TestRebalanceLosesNothing(t *testing.T) {
	topic := newTopic(t, 4)
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()
	ctx := context.Background()
	cfg := consumerConfig(topic)
	var mu sync.Mutex
	seen := map[string]int{}
	handler := func(ctx context.Context, env *eventsv1.Envelope) error {
		time.Sleep(time.Millisecond) // keep some work queued when the group rebalances
		mu.Lock()
		seen[env.GetEventId()]++
		mu.Unlock()
		return nil
	}
	c1, err := bus.NewConsumer(cfg, handler)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := bus.NewConsumer(cfg, handler)
	if err != nil {
		t.Fatal(err)
	}
	run(t, c1)
	stop2 := run(t, c2)
	waitFor(t, "both members ready", func() bool { return c1.Ready() && c2.Ready() })

	var want []string
	publish := func(n int, tag string) {
		var msgs []bus.Message
		for i := 0; i < n; i++ {
			env := envelope(t, events.NewID(), fmt.Sprintf("%s-%d", tag, i))
			want = append(want, env.GetEventId())
			msgs = append(msgs, encodeTo(t, ctx, topic, env))
		}
		if err := producer.Publish(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	publish(300, "before")
	stop2() // leaves mid-stream: its queued events go back to the group uncommitted
	publish(300, "after")
	waitFor(t, "every event handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range want {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	waitFor(t, "the remaining member ready", c1.Ready)
}

// The messaging semantic-convention metrics, as /metrics shows them: every
// record sent counted once by destination and type; every delivery counted
// once as consumed though its handler ran twice; each handler run timed,
// the failed one with error.type.
func TestMessagingMetricsCountSentConsumedAndProcessed(t *testing.T) {
	reg := telemetrytest.Install(t)
	topic := newTopic(t, 1)
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()
	ctx := context.Background()
	order := events.NewID()
	first, second := envelope(t, order, "metrics-1"), envelope(t, order, "metrics-2")
	if err := producer.Publish(ctx, encodeTo(t, ctx, topic, first), encodeTo(t, ctx, topic, second)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	attempts := map[string]int{}
	cfg := consumerConfig(topic)
	c, err := bus.NewConsumer(cfg, func(ctx context.Context, env *eventsv1.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[env.GetEventId()]++
		if env.GetEventId() == first.GetEventId() && attempts[env.GetEventId()] == 1 {
			return errors.New("store briefly away")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	base := map[string]string{"messaging_system": "kafka", "messaging_destination_name": topic, "sagasuite_event_type": "ORDER_COMPLETED"}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	processed := with(map[string]string{"messaging_operation_name": "process", "messaging_consumer_group_name": cfg.Group})
	waitFor(t, "three handler runs timed", func() bool {
		return telemetrytest.Total(t, reg, "messaging_process_duration_seconds", processed) == 3
	})
	if got := telemetrytest.Total(t, reg, "messaging_client_sent_messages_total", with(map[string]string{"messaging_operation_name": "send"})); got != 2 {
		t.Errorf("sent messages = %v, want 2 (series: %s)", got, telemetrytest.Names(t, reg, "messaging"))
	}
	consumed := with(map[string]string{"messaging_operation_name": "receive", "messaging_consumer_group_name": cfg.Group})
	if got := telemetrytest.Total(t, reg, "messaging_client_consumed_messages_total", consumed); got != 2 {
		t.Errorf("consumed messages = %v, want 2: a retry is no second delivery", got)
	}
	failed := telemetrytest.Find(t, reg, "messaging_process_duration_seconds", processed)
	var failedRuns float64
	for _, s := range failed {
		if s.Labels["error_type"] != "" {
			failedRuns += s.Value
			if s.Labels["error_type"] != "*errors.errorString" {
				t.Errorf("error.type = %q, want the cause's Go type", s.Labels["error_type"])
			}
		}
	}
	if failedRuns != 1 {
		t.Errorf("handler runs with error.type = %v, want 1 (series %+v)", failedRuns, failed)
	}
	// The existing ones stay.
	if got := telemetrytest.Total(t, reg, "sagasuite_bus_retries_total", map[string]string{"group": cfg.Group}); got != 1 {
		t.Errorf("sagasuite_bus_retries_total = %v, want 1", got)
	}
}
