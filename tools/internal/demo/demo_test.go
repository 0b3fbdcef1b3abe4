package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/audit"
	"github.com/sagasuite/sagasuite/tools/internal/stack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

// stackControl stops and starts services of an e2e stack.
type stackControl struct{ s *stack.Stack }

func (c stackControl) Stop(_ context.Context, name string) error { return c.s.Stop(name) }
func (c stackControl) Start(ctx context.Context, name string) error {
	return c.s.StartService(ctx, name)
}
func (c stackControl) SetOrderDeadline(ctx context.Context, d time.Duration) error {
	c.s.Env(suite.Order, "ORDER_DEADLINE", d.String())
	return c.s.Restart(ctx, suite.Order)
}

// The whole demo on the suite as five processes on the local real stack,
// with a generous order deadline and the power to stop services (and to give
// the deadline path's order alone a short deadline): every path is taken and
// ends as it should however busy the machine is, the audit is clean, and the
// summary line says so.
func TestDemoTakesEveryPathOnTheRealStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // a cold build of the five services on 2 cores is part of it
	defer cancel()
	s := stack.New(t, stack.Options{Env: map[string]map[string]string{
		suite.Order: {"ORDER_DEADLINE": "10m", "ORDER_DEADLINE_SCAN_INTERVAL": "100ms"},
	}})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := Run(ctx, s.Clients(), Options{Control: stackControl{s}, Progress: &progress})
	if err != nil {
		t.Fatalf("demo: %v\nprogress:\n%s", err, progress.String())
	}
	var out bytes.Buffer
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if err := res.Summary.WriteJSONLine(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("progress:\n%s\nstdout:\n%s", progress.String(), out.String())

	seen := map[string]bool{}
	for _, p := range res.Orders {
		if !p.AsExpected() || p.Err != nil {
			t.Errorf("%s: order %s ended %s (%v), want %v", p.Scenario, p.ID, p.Outcome(), p.Err, p.Expect)
		}
		seen[p.Outcome()] = true
	}
	for _, path := range []string{"COMPLETED", "OUT_OF_STOCK", "PAYMENT_FAILED", "SHIPMENT_FAILED", "CUSTOMER_REQUESTED", "TIMEOUT"} {
		if !seen[path] {
			t.Errorf("no order took the %s path", path)
		}
	}
	if len(res.Skipped) != 0 {
		t.Errorf("skipped: %v", res.Skipped)
	}

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var sum Summary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("last line is not the summary: %v\n%s", err, lines[len(lines)-1])
	}
	want := Summary{Orders: 8, Completed: 2, Cancelled: 6, Pending: 0, Unexpected: 0, Invariants: "ok", Violations: []string{}}
	if got, _ := json.Marshal(sum); string(got) != mustJSON(t, want) {
		t.Errorf("summary %s, want %s", got, mustJSON(t, want))
	}
	if !sum.OK() {
		t.Error("summary not OK")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSummaryVerdict(t *testing.T) {
	ended := &Placed{ID: "a", Expect: []string{"COMPLETED"}, Order: &orderv1.Order{Status: orderv1.OrderStatus_ORDER_STATUS_COMPLETED}}
	// Expected COMPLETED, ended PAYMENT_FAILED.
	declined := &Placed{ID: "b", Expect: []string{"COMPLETED"}, Order: &orderv1.Order{Status: orderv1.OrderStatus_ORDER_STATUS_CANCELLED,
		CancelReason: eventsv1.CancelReason_CANCEL_REASON_PAYMENT_FAILED}}
	cases := []struct {
		name     string
		rep      audit.Report
		auditErr error
		orders   []*Placed
		ok       bool
		inv      string
	}{
		{"clean", audit.Report{Orders: 1, Completed: 1}, nil, []*Placed{ended}, true, "ok"},
		{"pending", audit.Report{Orders: 1, Pending: 1, Violations: []string{"Order a is PENDING"}}, nil, []*Placed{ended}, false, "violated"},
		{"violation", audit.Report{Orders: 1, Cancelled: 1, Violations: []string{"SKU X: 1 reserved"}}, nil, []*Placed{ended}, false, "violated"},
		{"an order missing from the listing", audit.Report{}, nil, []*Placed{ended}, false, "violated"},
		{"audit could not read", audit.Report{}, errors.New("unavailable"), []*Placed{ended}, false, "violated"},
		{"an order ended unexpectedly", audit.Report{Orders: 2, Completed: 1, Cancelled: 1}, nil, []*Placed{ended, declined}, false, "ok"},
		{"an order not placed", audit.Report{Orders: 1, Completed: 1}, nil, []*Placed{ended, {Scenario: "x", Expect: []string{"COMPLETED"}}}, false, "ok"},
	}
	for _, tc := range cases {
		s := summarize(tc.rep, tc.auditErr, tc.orders)
		if s.OK() != tc.ok || s.Invariants != tc.inv {
			t.Errorf("%s: %+v, want OK %v, invariants %s", tc.name, s, tc.ok, tc.inv)
		}
	}
	var b bytes.Buffer
	if err := (Summary{Orders: 2, Completed: 2, Invariants: "ok"}).WriteJSONLine(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != `{"orders":2,"completed":2,"cancelled":0,"pending":0,"unexpected":0,"invariants":"ok","violations":[]}`+"\n" {
		t.Errorf("JSON line %q", b.String())
	}
}
