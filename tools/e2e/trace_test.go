package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/suite"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// exportedSpan is the part of a stdouttrace JSON line the trace test reads.
type exportedSpan struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ TraceID, SpanID string }
	Attributes  []struct {
		Key   string
		Value struct{ Value any }
	}
	Links []struct {
		SpanContext struct{ TraceID, SpanID string }
	}
	service string // from the file it was read from
}

func (s exportedSpan) attr(key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return fmt.Sprint(kv.Value.Value)
		}
	}
	return ""
}

// exportedSpans reads the span lines the console exporter wrote into each
// service's log (stderr), labelled with the service.
func exportedSpans(t *testing.T, w *world) []exportedSpan {
	t.Helper()
	var out []exportedSpan
	for _, name := range suite.Services {
		data, err := os.ReadFile(w.s.LogPathOf(name, 0))
		if err != nil {
			t.Fatalf("log of %s: %v", name, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !bytes.HasPrefix(line, []byte(`{"Name":`)) {
				continue // the service's own log lines
			}
			var s exportedSpan
			if err := json.Unmarshal(line, &s); err != nil {
				continue // a line cut short by the exporter's next batch not yet written
			}
			s.service = name
			out = append(out, s)
		}
	}
	return out
}

// sagaTrace is what the spans of one order's saga show.
type sagaTrace struct {
	traces   map[string]bool // trace ids of the spans carrying the order id as message key
	services map[string]bool // services with a span in those traces
	types    map[string]bool // event types sent in those traces
	problems []string        // parent-chain faults
}

func traceOf(spans []exportedSpan, orderID string) sagaTrace {
	st := sagaTrace{traces: map[string]bool{}, services: map[string]bool{}, types: map[string]bool{}}
	for _, s := range spans {
		if s.attr("messaging.kafka.message.key") == orderID {
			st.traces[s.SpanContext.TraceID] = true
		}
	}
	byID := map[string]exportedSpan{}
	for _, s := range spans {
		if st.traces[s.SpanContext.TraceID] {
			byID[s.SpanContext.SpanID] = s
			st.services[s.service] = true
			if strings.HasPrefix(s.Name, "send ") {
				st.types[s.attr("sagasuite.event_type")] = true
			}
		}
	}
	for _, s := range byID {
		if !strings.HasPrefix(s.Name, "process ") {
			continue
		}
		// A process span is the child of the send span of its record, in
		// another service, and links to it.
		parent, ok := byID[s.Parent.SpanID]
		topic := strings.TrimPrefix(s.Name, "process ")
		switch {
		case !ok:
			st.problems = append(st.problems, fmt.Sprintf("%s in %s: parent %s not (yet) exported", s.Name, s.service, s.Parent.SpanID))
		case parent.Name != "send "+topic:
			st.problems = append(st.problems, fmt.Sprintf("%s in %s: parent is %q, want %q", s.Name, s.service, parent.Name, "send "+topic))
		case len(s.Links) != 1 || s.Links[0].SpanContext.SpanID != parent.SpanContext.SpanID:
			st.problems = append(st.problems, fmt.Sprintf("%s in %s: links %v, want one to its send span", s.Name, s.service, s.Links))
		}
	}
	sort.Strings(st.problems)
	return st
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Each saga is one trace holding spans of all five services, each consumer
// span under (and linked to) the producer span of its record: the happy path,
// and a compensated one (the shipment fails: refund, restock, cancel) whose
// compensations are in the same trace.
func TestEachSagaIsOneTraceAcrossAllFiveServices(t *testing.T) {
	console := map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "200"}
	env := map[string]map[string]string{}
	for _, name := range suite.Services {
		env[name] = console
	}
	w := newWorld(t, 15*time.Minute, env)
	sku := w.product(5)

	completedID := w.place(orderSpec{customer: w.customer(), sku: sku, qty: 1})
	w.expect(completedID, completed, noReason)
	compensatedID := w.place(orderSpec{customer: w.customer(), sku: sku, qty: 2, address: address("AQ", "9999")})
	w.expect(compensatedID, cancelled, eventsv1.CancelReason_CANCEL_REASON_SHIPMENT_FAILED)
	w.waitStep(compensatedID, eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED)
	w.waitStep(compensatedID, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED)

	t.Run("completed", func(t *testing.T) { checkSagaTrace(t, w, completedID, "ORDER_COMPLETED") })
	t.Run("compensated", func(t *testing.T) { checkSagaTrace(t, w, compensatedID, "PAYMENT_REFUNDED", "STOCK_RESTORED") })
}

// checkSagaTrace waits (bounded: spans leave in batches) until the order's
// trace is complete, then judges what was exported.
func checkSagaTrace(t *testing.T, w *world, orderID string, wantTypes ...string) {
	complete := func(st sagaTrace) bool {
		if len(st.services) < len(suite.Services) || len(st.problems) > 0 {
			return false
		}
		for _, typ := range wantTypes {
			if !st.types[typ] {
				return false
			}
		}
		return true
	}
	var st sagaTrace
	deadline := time.Now().Add(sagaWait)
	for {
		st = traceOf(exportedSpans(t, w), orderID)
		if complete(st) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("saga %s: traces %v, services %v, event types sent %v", orderID, keys(st.traces), keys(st.services), keys(st.types))
	if len(st.traces) != 1 {
		t.Errorf("the saga's messages lie in %d traces %v, want one", len(st.traces), keys(st.traces))
	}
	if len(st.services) != len(suite.Services) {
		t.Errorf("the saga's trace holds spans of %v, want all of %v", keys(st.services), suite.Services)
	}
	for _, typ := range wantTypes {
		if !st.types[typ] {
			t.Errorf("no send span of %s in the saga's trace (sent: %v)", typ, keys(st.types))
		}
	}
	for _, p := range st.problems {
		t.Error(p)
	}
}
