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
		Mix: Mix{Success: 40, Declined: 20, Undeliverable: 20, OutOfStock: 20}, SKUs: 3, Customers: 4, Progress: &progress})
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
