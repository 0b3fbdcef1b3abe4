package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/audit"
	"github.com/sagasuite/sagasuite/tools/internal/stack"
)

// A short bench against the whole suite as five processes on the local real
// stack: every placed order ends, the outcomes are the mix's, the counts add
// up, and the invariant audit of what the bench placed is clean.
func TestBenchAgainstTheRealStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // a cold build of the five services on 2 cores is part of it
	defer cancel()
	s := stack.New(t, stack.Options{})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	res, err := Run(ctx, s.Clients(), Config{Concurrency: 4, Orders: 30,
		Mix: Mix{Success: 40, Declined: 20, Undeliverable: 20, OutOfStock: 20}, SKUs: 3, Customers: 4, Progress: &progress,
		Probe: stackProbe(t, s)})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("bench:\n%s", table.String())
	if res.Placed != 30 || res.Done != 30 || res.Unfinished != 0 || len(res.Errors) != 0 {
		t.Fatalf("placed %d, done %d, unfinished %d, errors %v; want all 30 placed and ended", res.Placed, res.Done, res.Unfinished, res.Errors)
	}
	sum := 0
	for _, n := range res.Outcomes {
		sum += n
	}
	if sum != res.Done || res.Completed()+res.Cancelled() != res.Done || res.Latency.Count != res.Done {
		t.Errorf("outcomes %v add up to %d, latency count %d, done %d", res.Outcomes, sum, res.Latency.Count, res.Done)
	}
	want := map[string]int{"COMPLETED": 12, "PAYMENT_FAILED": 6, "SHIPMENT_FAILED": 6, "OUT_OF_STOCK": 6}
	for k, n := range want {
		if res.Outcomes[k] != n {
			t.Errorf("%s: %d orders, want %d (outcomes %v)", k, res.Outcomes[k], n, res.Outcomes)
		}
	}
	if res.Unexpected != 0 {
		t.Errorf("%d orders ended otherwise than their kind", res.Unexpected)
	}
	checkInstruments(t, res)
	actx, acancel := context.WithTimeout(ctx, 3*time.Minute) // a bound for settling compensations, not a speed target
	defer acancel()
	rep, err := audit.Await(actx, s.Clients(), audit.Scope{CustomerIDs: res.CustomerIDs, SKUs: res.SKUs}, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if !rep.OK() || rep.Orders != 30 || rep.Pending != 0 {
		t.Fatalf("audit: %d orders, %d pending, violations:\n  %s", rep.Orders, rep.Pending, strings.Join(rep.Violations, "\n  "))
	}
}

// checkInstruments: the probe found each service by its port and the local
// servers, charged CPU to the suite, and read MariaDB's and the services'
// counters — what the run did must show in them (no figure is asserted).
func checkInstruments(t *testing.T, res Result) {
	t.Helper()
	in := res.Instruments
	if in == nil {
		t.Fatal("no instruments in the result")
	}
	if in.Per != res.Completed() {
		t.Errorf("per-saga divisor %d, completed %d", in.Per, res.Completed())
	}
	found := map[string]ProcCPU{}
	for _, p := range in.CPU {
		found[p.Name] = p
	}
	for _, name := range []string{"order", "inventory", "payment", "shipping", "notification"} {
		if p, ok := found[name]; !ok || !strings.HasPrefix(p.FoundBy, "listens on ") || len(p.PIDs) != 1 {
			t.Errorf("service %s: %+v, want one process found by its port", name, p)
		}
	}
	for _, name := range []string{"kafka", "mariadb", "postgres", "ferretdb", "cassandra"} {
		if _, ok := found[name]; !ok {
			t.Errorf("server %s not found (notes %v)", name, in.Notes)
		}
	}
	if in.SuiteCPUMS <= 0 || found["order"].CPUMS <= 0 {
		t.Errorf("suite CPU %v ms, order %v ms: 30 sagas cost nothing?", in.SuiteCPUMS, found["order"].CPUMS)
	}
	ops := map[string]float64{}
	for _, o := range in.Ops {
		ops[o.Source+" "+o.Counter] = o.Delta
	}
	if ops["mariadb Questions"] < 30 || ops["mariadb Com_insert"] < 30 {
		t.Errorf("MariaDB counters %v: fewer statements than orders", ops)
	}
	published := 0.0
	for k, v := range ops {
		if strings.HasPrefix(k, "order ") && strings.Contains(k, "outbox_published") {
			published += v
		}
	}
	if published < 30 { // at least each ORDER_CREATED
		t.Errorf("order published %v outbox rows, want ≥ 30; ops %v", published, ops)
	}
	if len(in.Notes) > 0 {
		t.Logf("instrument notes: %v", in.Notes)
	}
}
