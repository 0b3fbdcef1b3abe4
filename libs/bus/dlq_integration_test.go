package bus_test

// Dead-letter tooling end to end on the real Kafka of the local stack: a real
// Consumer dead-letters, DeadLetterQueue lists, shows, redrives and drops.

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// A trace the test starts itself, so it does not depend on how the test
// binary's tracer provider is set up: whatever span ids the producer and the
// redrive add, the trace id must survive.
const dlqTestTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"

func TestDeadLettersListShowRedriveDrop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := testenv.Brokers()
	prefix := testenv.UniqueName("test.dlq.") + "."
	source := prefix + "orders.v1"
	group := prefix + "order"
	dlqTopic := bus.DeadLetterTopic(group)
	// The consumer creates its DLQ with one partition; two here make List
	// read more than one partition.
	if err := bus.EnsureTopics(ctx, brokers,
		bus.TopicSpec{Name: source, Partitions: 1, ReplicationFactor: 1},
		bus.TopicSpec{Name: dlqTopic, Partitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatalf("Kafka for tests (SAGASUITE_KAFKA_BROKERS; run `make infra-up`): %v", err)
	}

	// One valid event the handler refuses until "fixed", one record that is no envelope.
	valid, err := events.New(events.Meta{OrderID: events.NewID(), CustomerID: events.NewID(), Producer: "test",
		CausationID: testenv.IDFor("dlq-valid-" + prefix), OccurredAt: time.Now()}, &eventsv1.OrderCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	validMsg, err := bus.EncodeEnvelope(ctx, valid)
	if err != nil {
		t.Fatal(err)
	}
	validMsg.Topic = source
	validMsg.Headers["traceparent"] = "00-" + dlqTestTraceID + "-00f067aa0ba902b7-01"
	garbageKey := testenv.UniqueName("garbage-")
	garbage := bus.Message{Topic: source, Key: garbageKey, Value: []byte("not protobuf"), Headers: map[string]string{"id": "junk-1"}}
	producer := bus.NewProducer(brokers)
	defer producer.Close()
	if err := producer.Publish(ctx, validMsg, garbage); err != nil {
		t.Fatal(err)
	}

	beforeDeadLettering := time.Now()
	var fixed atomic.Bool
	var handledAfterFix atomic.Int32
	consumer, err := bus.NewConsumer(bus.ConsumerConfig{Brokers: brokers, Group: group, Topics: []string{source},
		RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond},
		func(ctx context.Context, env *eventsv1.Envelope) error {
			if !fixed.Load() {
				return bus.Permanent(errors.New("order total does not add up"))
			}
			if env.GetEventId() == valid.GetEventId() {
				handledAfterFix.Add(1)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	run(t, consumer)

	redriveTime := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	q, err := bus.NewDeadLetterQueue(brokers, dlqTopic, bus.WithDeadLetterClock(func() time.Time { return redriveTime }),
		bus.WithDeadLetterOperator("dlq-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()

	var open []bus.DeadLetter
	waitFor(t, "two dead letters", func() bool {
		open, err = q.List(ctx, bus.DeadLetterFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(open) == 2
	})
	afterDeadLettering := time.Now()
	byKey := map[string]bus.DeadLetter{}
	for _, d := range open {
		byKey[d.Key] = d
	}
	dv, dg := byKey[valid.GetOrderId()], byKey[garbageKey]
	if dv.Envelope == nil || dv.Envelope.GetEventId() != valid.GetEventId() || dv.Type != "ORDER_COMPLETED" ||
		!strings.Contains(dv.Error, "order total does not add up") || dv.SourceTopic != source || dv.Group != group ||
		dv.Attempts != 1 || dv.SourcePartition != 0 || dv.SourceOffset != 0 || dv.Resolution != nil {
		t.Fatalf("valid dead letter: %+v", dv)
	}
	if dg.Envelope != nil || dg.DecodeError == "" || !strings.Contains(dg.Error, "decode envelope") || dg.EventID != "junk-1" ||
		dg.SourceOffset != 1 || dg.OrderID != garbageKey {
		t.Fatalf("undecodable dead letter: %+v", dg)
	}

	// Filters.
	count := func(f bus.DeadLetterFilter) int {
		t.Helper()
		got, err := q.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	for name, tc := range map[string]struct {
		f    bus.DeadLetterFilter
		want int
	}{
		"order":                {bus.DeadLetterFilter{OrderID: valid.GetOrderId()}, 1},
		"order of the garbage": {bus.DeadLetterFilter{OrderID: garbageKey}, 1},
		"type":                 {bus.DeadLetterFilter{Type: "ORDER_COMPLETED"}, 1},
		"full type name":       {bus.DeadLetterFilter{Type: "EVENT_TYPE_ORDER_COMPLETED"}, 1},
		"other type":           {bus.DeadLetterFilter{Type: "ORDER_CREATED"}, 0},
		"window":               {bus.DeadLetterFilter{Since: beforeDeadLettering, Until: afterDeadLettering}, 2},
		"until before":         {bus.DeadLetterFilter{Until: beforeDeadLettering}, 0},
		"since after":          {bus.DeadLetterFilter{Since: afterDeadLettering}, 0},
		"type and order":       {bus.DeadLetterFilter{Type: "ORDER_COMPLETED", OrderID: garbageKey}, 0},
	} {
		if got := count(tc.f); got != tc.want {
			t.Errorf("filter %s: %d dead letters, want %d", name, got, tc.want)
		}
	}

	// Show: by partition/offset and by event id, with every header.
	got, err := q.Get(ctx, dv.Partition, dv.Offset)
	if err != nil {
		t.Fatal(err)
	}
	if got.Envelope.GetEventId() != valid.GetEventId() || got.Headers["dlq-topic"] != source ||
		got.Headers["type"] != "ORDER_COMPLETED" || traceIDOf(got.Headers["traceparent"]) != dlqTestTraceID {
		t.Fatalf("Get: %+v", got)
	}
	found, err := q.FindEvent(ctx, valid.GetEventId())
	if err != nil || len(found) != 1 || found[0].Ref() != dv.Ref() {
		t.Fatalf("FindEvent: %v %+v", err, found)
	}
	if _, err := q.Get(ctx, dv.Partition, dv.Offset+100); !errors.Is(err, bus.ErrDeadLetterNotFound) {
		t.Fatalf("Get past the end: %v, want ErrDeadLetterNotFound", err)
	}
	if _, err := q.Get(ctx, 7, 0); !errors.Is(err, bus.ErrDeadLetterNotFound) {
		t.Fatalf("Get of a partition that does not exist: %v, want ErrDeadLetterNotFound", err)
	}

	// Redrive, dry run: the record it would write, and nothing changes.
	sourceEnd := endOffset(t, ctx, source)
	rec, err := q.Redrive(ctx, dv, bus.DeadLetterAction{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Applied || rec.Action != bus.DeadLetterRedrive || rec.RedrivenTo != source || rec.Ref != dv.Ref() || rec.By != "dlq-test" {
		t.Fatalf("dry-run record: %+v", rec)
	}
	if end := endOffset(t, ctx, source); end != sourceEnd {
		t.Fatalf("dry run published: source end offset %d → %d", sourceEnd, end)
	}
	if n := count(bus.DeadLetterFilter{}); n != 2 {
		t.Fatalf("after a dry run %d open dead letters, want 2", n)
	}

	// Redrive, applied, with the handler fixed: back on the source topic as it
	// was, and handled this time.
	fixed.Store(true)
	rec, err = q.Redrive(ctx, dv, bus.DeadLetterAction{Apply: true, Reason: "fixed the totals"})
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Applied || !rec.At.Equal(redriveTime) {
		t.Fatalf("redrive record: %+v", rec)
	}
	redriven := readAt(t, ctx, source, sourceEnd)
	h := map[string]string{}
	for _, kh := range redriven.Headers {
		h[kh.Key] = string(kh.Value)
	}
	if string(redriven.Key) != valid.GetOrderId() || string(redriven.Value) != string(validMsg.Value) ||
		h["id"] != valid.GetEventId() || h["type"] != "ORDER_COMPLETED" ||
		traceIDOf(h["traceparent"]) != dlqTestTraceID ||
		h[bus.HeaderRedrivenFrom] != dv.Ref() || h[bus.HeaderRedrivenAt] != "2026-12-01T10:00:00Z" {
		t.Fatalf("redriven record: key %s headers %v", redriven.Key, h)
	}
	for k := range h {
		if strings.HasPrefix(k, "dlq-") {
			t.Errorf("redriven record keeps header %s", k)
		}
	}
	waitFor(t, "the redriven event handled", func() bool { return handledAfterFix.Load() == 1 })
	if _, err := q.Redrive(ctx, dv, bus.DeadLetterAction{Apply: true}); !errors.Is(err, bus.ErrDeadLetterResolved) {
		t.Fatalf("second redrive: %v, want ErrDeadLetterResolved", err)
	}

	// Drop the undecodable one: nothing open is left.
	if rec, err := q.Drop(ctx, dg, bus.DeadLetterAction{Apply: true, Reason: "not an event"}); err != nil || !rec.Applied {
		t.Fatalf("drop: %v %+v", err, rec)
	}
	if n := count(bus.DeadLetterFilter{}); n != 0 {
		t.Fatalf("%d open dead letters after redrive and drop, want 0", n)
	}
	all, err := q.List(ctx, bus.DeadLetterFilter{IncludeResolved: true})
	if err != nil || len(all) != 2 {
		t.Fatalf("list all: %v, %d dead letters, want 2 (the redriven event must not fail again)", err, len(all))
	}
	actions := map[string]bus.DeadLetterAudit{}
	for _, d := range all {
		if d.Resolution == nil {
			t.Fatalf("%s has no resolution", d.Ref())
		}
		actions[d.Key] = *d.Resolution
	}
	if a := actions[valid.GetOrderId()]; a.Action != bus.DeadLetterRedrive || a.Reason != "fixed the totals" || a.RedrivenTo != source {
		t.Errorf("resolution of the valid one: %+v", a)
	}
	if a := actions[garbageKey]; a.Action != bus.DeadLetterDrop || a.Reason != "not an event" {
		t.Errorf("resolution of the undecodable one: %+v", a)
	}
}

func TestDeadLetterQueueOfAGroupWithoutDLQSaysSoAndCreatesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := bus.DeadLetterTopic(testenv.UniqueName("test.dlq.nogroup-"))
	q, err := bus.NewDeadLetterQueue(testenv.Brokers(), topic)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := 0; i < 2; i++ { // the second time proves the first did not create it
		if _, err := q.List(ctx, bus.DeadLetterFilter{}); !errors.Is(err, bus.ErrTopicNotFound) {
			t.Fatalf("List of a missing DLQ: %v, want ErrTopicNotFound", err)
		}
	}
	if _, err := bus.NewDeadLetterQueue(nil, topic); err == nil {
		t.Fatal("no brokers accepted")
	}
	if _, err := bus.NewDeadLetterQueue(testenv.Brokers(), ""); err == nil {
		t.Fatal("no topic accepted")
	}
}

func traceIDOf(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 {
		return ""
	}
	return parts[1]
}

// endOffset is the end offset of partition 0 of topic.
func endOffset(t *testing.T, ctx context.Context, topic string) int64 {
	t.Helper()
	conn, err := kafka.DialLeader(ctx, "tcp", testenv.Brokers()[0], topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	end, err := conn.ReadLastOffset()
	if err != nil {
		t.Fatal(err)
	}
	return end
}

// readAt reads the record at offset of partition 0 of topic.
func readAt(t *testing.T, ctx context.Context, topic string, offset int64) kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: testenv.Brokers(), Topic: topic, Partition: 0, MaxWait: time.Second})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("read %s at %d: %v", topic, offset, err)
	}
	return m
}
