package bus_test

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// endedSpans returns the recorded, ended spans with the given name.
func endedSpans(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spanRecorder.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attrsOf(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

// checkAttrs reports every wanted attribute the span lacks or holds with
// another value (the type counts: the partition id is a string).
func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want ...attribute.KeyValue) {
	t.Helper()
	got := attrsOf(s)
	for _, kv := range want {
		if v, ok := got[kv.Key]; !ok || v != kv.Value {
			t.Errorf("%s: %s = %v (%s), want %v (%s)", s.Name(), kv.Key, v.Emit(), v.Type(), kv.Value.Emit(), kv.Value.Type())
		}
	}
}

// A record written to an outbox in one trace and sent later by a relay
// running in its own: the send span joins the writer's trace (traceparent in
// the stored headers), and the consumer's process span is the send span's
// child and links to it, both with the messaging semantic-convention
// attributes.
func TestSendAndProcessSpansFollowMessagingConventions(t *testing.T) {
	topic := newTopic(t, 1)
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()
	tracer := otel.Tracer("test")

	// The transaction that writes the rows (as outbox.AddEnvelopes does).
	writeCtx, writeSpan := tracer.Start(context.Background(), "write order")
	order := events.NewID()
	first, second := envelope(t, order, "spans-1"), envelope(t, order, "spans-2")
	rows := []bus.Message{encodeTo(t, writeCtx, topic, first), encodeTo(t, writeCtx, topic, second)}
	writeSpan.End()

	// The relay publishes them later, under a span of its own.
	relayCtx, relaySpan := tracer.Start(context.Background(), "relay tick")
	if err := producer.Publish(relayCtx, rows...); err != nil {
		t.Fatalf("publish: %v", err)
	}
	relaySpan.End()

	var mu sync.Mutex
	handlerSpans := map[string]trace.SpanContext{} // event id -> span the handler ran in
	cfg := consumerConfig(topic)
	c, err := bus.NewConsumer(cfg, func(ctx context.Context, env *eventsv1.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		handlerSpans[env.GetEventId()] = trace.SpanContextFromContext(ctx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitFor(t, "two ended process spans", func() bool { return len(endedSpans("process "+topic)) >= 2 })

	sends := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range endedSpans("send " + topic) {
		sends[attrsOf(s)["messaging.message.id"].AsString()] = s
	}
	processes := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range endedSpans("process " + topic) {
		processes[attrsOf(s)["messaging.message.id"].AsString()] = s
	}
	if len(sends) != 2 || len(processes) != 2 {
		t.Fatalf("%d send and %d process spans for %s, want 2 and 2 (one per record)", len(sends), len(processes), topic)
	}

	for offset, env := range []*eventsv1.Envelope{first, second} {
		id := env.GetEventId()
		send, process := sends[id], processes[id]
		if send == nil || process == nil {
			t.Fatalf("event %s: send span %v, process span %v", id, send != nil, process != nil)
		}

		if send.SpanKind() != trace.SpanKindProducer {
			t.Errorf("send span kind %v, want producer", send.SpanKind())
		}
		if send.Parent().SpanID() != writeSpan.SpanContext().SpanID() || send.SpanContext().TraceID() != writeSpan.SpanContext().TraceID() {
			t.Errorf("send span's parent %s/%s, want the writer's %s/%s (not the relay's %s)",
				send.Parent().TraceID(), send.Parent().SpanID(), writeSpan.SpanContext().TraceID(), writeSpan.SpanContext().SpanID(),
				relaySpan.SpanContext().SpanID())
		}
		common := []attribute.KeyValue{
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.destination.name", topic),
			attribute.String("messaging.destination.partition.id", "0"),
			attribute.Int("messaging.kafka.offset", offset),
			attribute.String("messaging.message.id", id),
			attribute.String("messaging.kafka.message.key", order),
		}
		checkAttrs(t, send, append(common,
			attribute.String("messaging.operation.name", "send"),
			attribute.String("messaging.operation.type", "send"))...)

		if process.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("process span kind %v, want consumer", process.SpanKind())
		}
		if process.Parent().SpanID() != send.SpanContext().SpanID() || process.SpanContext().TraceID() != send.SpanContext().TraceID() {
			t.Errorf("process span's parent %s, want the send span %s", process.Parent().SpanID(), send.SpanContext().SpanID())
		}
		if links := process.Links(); len(links) != 1 || !links[0].SpanContext.Equal(send.SpanContext().WithRemote(true)) {
			t.Errorf("process span links %v, want one to the send span %s", links, send.SpanContext().SpanID())
		}
		checkAttrs(t, process, append(common,
			attribute.String("messaging.operation.name", "process"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.consumer.group.name", cfg.Group))...)

		mu.Lock()
		handler := handlerSpans[id]
		mu.Unlock()
		if handler.SpanID() != process.SpanContext().SpanID() {
			t.Errorf("handler ran in span %s, want the process span %s", handler.SpanID(), process.SpanContext().SpanID())
		}
	}
}
