package bus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/logging"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// A line the handler logs with its context names the trace and span of the
// process span, and the order and event being handled, with no help from
// the handler.
func TestHandlerLogLineCarriesTraceSpanOrderAndEventIDs(t *testing.T) {
	topic := newTopic(t, 1)
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()
	ctx, span := otel.Tracer("test").Start(context.Background(), "saga")
	defer span.End()
	env := envelope(t, events.NewID(), t.Name())
	if err := producer.Publish(ctx, encodeTo(t, ctx, topic, env)); err != nil {
		t.Fatalf("publish: %v", err)
	}

	var mu sync.Mutex
	var out bytes.Buffer
	logger := logging.New(lockedWriter{&mu, &out}, slog.LevelInfo, logging.FormatJSON)
	handled := make(chan struct{}, 1)
	c, err := bus.NewConsumer(consumerConfig(topic), func(ctx context.Context, _ *eventsv1.Envelope) error {
		logger.InfoContext(ctx, "handled")
		select {
		case handled <- struct{}{}:
		default:
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitFor(t, "the event handled", func() bool { return len(handled) > 0 })

	mu.Lock()
	defer mu.Unlock()
	var rec map[string]any
	if err := json.Unmarshal(bytes.SplitN(out.Bytes(), []byte("\n"), 2)[0], &rec); err != nil {
		t.Fatalf("log line %q: %v", out.String(), err)
	}
	if rec["trace_id"] != span.SpanContext().TraceID().String() {
		t.Errorf("trace_id = %v, want the publisher's %s", rec["trace_id"], span.SpanContext().TraceID())
	}
	if id, _ := rec["span_id"].(string); id == "" || id == span.SpanContext().SpanID().String() {
		t.Errorf("span_id = %v, want the consumer's process span", rec["span_id"])
	}
	if rec["order_id"] != env.GetOrderId() || rec["event_id"] != env.GetEventId() {
		t.Errorf("order_id, event_id = %v, %v; want %s, %s", rec["order_id"], rec["event_id"], env.GetOrderId(), env.GetEventId())
	}
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}
