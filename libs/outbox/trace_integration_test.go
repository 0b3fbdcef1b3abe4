package outbox

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// The relay sends a row long after, and outside, the transaction that wrote
// it; the row's stored traceparent makes the send span (and so the
// consumer's process span) join the writer's trace anyway.
func TestRelaySendJoinsTheTraceOfTheTransactionThatWroteTheRow(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	prevProvider, prevPropagator := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevProvider); otel.SetTextMapPropagator(prevPropagator) })

	f := newFixture(t, 1)
	order := events.NewID()
	writeCtx, writeSpan := otel.Tracer("test").Start(context.Background(), "place order")
	env, err := events.New(events.Meta{OrderID: order, CustomerID: order, Producer: "test", CausationID: testenv.IDFor("traced-row"), OccurredAt: time.Now()},
		&eventsv1.OrderCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	// As AddEnvelopes does: the headers take the writer's trace context.
	m, err := bus.EncodeEnvelope(writeCtx, env)
	if err != nil {
		t.Fatal(err)
	}
	m.Topic = f.topic
	err = sqlstore.InTx(writeCtx, f.db, func(tx *sql.Tx) error { return Add(writeCtx, tx, time.Now(), m) })
	writeSpan.End()
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var handled trace.SpanContext
	f.consume(t, func(ctx context.Context, env *eventsv1.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		handled = trace.SpanContextFromContext(ctx)
		return nil
	})
	runRelay(t, NewRelay(f.db, f.producer, RelayConfig{PollInterval: 5 * time.Millisecond}))
	waitFor(t, "the event handled", func() bool { mu.Lock(); defer mu.Unlock(); return handled.IsValid() })

	var send sdktrace.ReadOnlySpan
	for _, s := range recorder.Ended() {
		if s.Name() == "send "+f.topic {
			send = s
		}
	}
	if send == nil {
		t.Fatalf("no span %q among %d ended spans", "send "+f.topic, len(recorder.Ended()))
	}
	writer := writeSpan.SpanContext()
	if send.SpanContext().TraceID() != writer.TraceID() || send.Parent().SpanID() != writer.SpanID() {
		t.Errorf("send span in trace %s under %s, want the writer's trace %s under its span %s",
			send.SpanContext().TraceID(), send.Parent().SpanID(), writer.TraceID(), writer.SpanID())
	}
	mu.Lock()
	defer mu.Unlock()
	if handled.TraceID() != writer.TraceID() {
		t.Errorf("handler ran in trace %s, want the writer's %s", handled.TraceID(), writer.TraceID())
	}
}
