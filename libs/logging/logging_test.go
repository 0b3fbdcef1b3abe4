package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/sagasuite/sagasuite/libs/logging"
)

func spanContext(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	traceID, err := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	if err != nil {
		t.Fatal(err)
	}
	spanID, err := trace.SpanIDFromHex("00f067aa0ba902b7")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled})
	return trace.ContextWithSpanContext(context.Background(), sc), sc
}

func decodeLines(t *testing.T, out *bytes.Buffer) []map[string]any {
	t.Helper()
	var records []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("decode %q: %v", line, err)
		}
		records = append(records, rec)
	}
	return records
}

func TestNewJSONAddsTraceAttributes(t *testing.T) {
	ctx, sc := spanContext(t)
	var out bytes.Buffer
	logger := logging.New(&out, slog.LevelInfo, logging.FormatJSON).With("service", "order")

	logger.InfoContext(ctx, "order created", "order_id", "o-1")
	logger.Info("no context")
	logger.DebugContext(ctx, "below level")

	records := decodeLines(t, &out)
	if len(records) != 2 {
		t.Fatalf("got %d records, want 2: %s", len(records), out.String())
	}
	withCtx := records[0]
	for key, want := range map[string]string{
		"msg":      "order created",
		"order_id": "o-1",
		"service":  "order",
		"trace_id": sc.TraceID().String(),
		"span_id":  sc.SpanID().String(),
	} {
		if got := withCtx[key]; got != want {
			t.Errorf("%s = %v, want %q", key, got, want)
		}
	}
	if _, ok := records[1]["trace_id"]; ok {
		t.Errorf("record without a span has trace_id: %v", records[1])
	}
}

func TestNewTextFormat(t *testing.T) {
	ctx, sc := spanContext(t)
	var out bytes.Buffer
	logging.New(&out, slog.LevelDebug, logging.FormatText).DebugContext(ctx, "hello")
	line := out.String()
	for _, want := range []string{"level=DEBUG", "msg=hello", "trace_id=" + sc.TraceID().String(), "span_id=" + sc.SpanID().String()} {
		if !strings.Contains(line, want) {
			t.Errorf("text line %q lacks %q", line, want)
		}
	}
}

func TestLoggerInContext(t *testing.T) {
	var out bytes.Buffer
	logger := logging.New(&out, slog.LevelInfo, logging.FormatJSON)
	ctx := logging.NewContext(context.Background(), logger)
	if logging.FromContext(ctx) != logger {
		t.Error("FromContext did not return the stored logger")
	}
	if logging.FromContext(context.Background()) != slog.Default() {
		t.Error("FromContext without a logger is not slog.Default()")
	}
}

// A line an event handler logs names its trace, span, order and event, once
// each, even when the handler also names the order itself.
func TestHandlerLineCarriesTraceAndEventIDs(t *testing.T) {
	ctx, sc := spanContext(t)
	ctx = logging.ContextWithEvent(ctx, "o-42", "ev-7")
	var out bytes.Buffer
	logger := logging.New(&out, slog.LevelInfo, logging.FormatJSON)

	logger.InfoContext(ctx, "stock reserved", "sku", "A")
	logger.WarnContext(ctx, "named again", "order_id", "o-42")
	logger.With("event_id", "ev-7").InfoContext(ctx, "preset")
	logger.WithGroup("g").InfoContext(ctx, "grouped")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, line := range lines {
		if n := strings.Count(line, `"order_id"`); n != 1 {
			t.Errorf("order_id appears %d times in %s", n, line)
		}
		if n := strings.Count(line, `"event_id"`); n != 1 {
			t.Errorf("event_id appears %d times in %s", n, line)
		}
	}
	records := decodeLines(t, &out)
	if len(records) != 4 {
		t.Fatalf("got %d records, want 4: %s", len(records), out.String())
	}
	for i, rec := range records[:3] {
		for key, want := range map[string]string{
			"trace_id": sc.TraceID().String(),
			"span_id":  sc.SpanID().String(),
			"order_id": "o-42",
			"event_id": "ev-7",
		} {
			if got := rec[key]; got != want {
				t.Errorf("record %d (%v): %s = %v, want %q", i, rec["msg"], key, got, want)
			}
		}
	}
	group, _ := records[3]["g"].(map[string]any)
	if group["order_id"] != "o-42" || group["event_id"] != "ev-7" || group["trace_id"] != sc.TraceID().String() {
		t.Errorf("grouped record lacks the ids in its group: %v", records[3])
	}

	orderID, eventID, ok := logging.EventFromContext(ctx)
	if !ok || orderID != "o-42" || eventID != "ev-7" {
		t.Errorf("EventFromContext = %q, %q, %v", orderID, eventID, ok)
	}
	if _, _, ok := logging.EventFromContext(context.Background()); ok {
		t.Error("EventFromContext on a bare context reports an event")
	}
}

// Outside a handler nothing is added.
func TestNoEventNoIDs(t *testing.T) {
	var out bytes.Buffer
	logging.New(&out, slog.LevelInfo, logging.FormatJSON).InfoContext(context.Background(), "plain")
	for _, key := range []string{"order_id", "event_id", "trace_id", "span_id"} {
		if strings.Contains(out.String(), key) {
			t.Errorf("plain line has %s: %s", key, out.String())
		}
	}
}
