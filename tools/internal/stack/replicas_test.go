package stack

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

func TestReplicaSlots(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a bound for a hang
	defer cancel()
	rec := &recorder{TB: t}
	defer rec.runCleanups() // on an early failure; a no-op after the explicit run
	s := New(rec, Options{
		BinDir: fakeBinaries(t), Services: []string{suite.Order, suite.Shipping},
		Replicas: map[string]int{suite.Order: 2},
	})
	if got := [2]int{s.Slots(suite.Order), s.Slots(suite.Shipping)}; got != [2]int{3, 1} {
		t.Fatalf("slots order, shipping = %v, want [3 1] (two replicas and a spare; one)", got)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for slot, want := range []bool{true, true, false} {
		if got := s.RunningReplica(suite.Order, slot); got != want {
			t.Errorf("order slot %d running = %v after Start, want %v", slot, got, want)
		}
	}
	addrs := map[string]bool{}
	for slot := range 3 {
		addrs[s.GRPCAddrOf(suite.Order, slot)] = true
		addrs[s.OpsAddrOf(suite.Order, slot)] = true
	}
	if len(addrs) != 6 {
		t.Errorf("order's three slots share ports: %v", addrs)
	}
	if env := lastEnvFile(t, s.LogPathOf(suite.Order, 1)); env["ORDER_GRPC_ADDR"] != s.GRPCAddrOf(suite.Order, 1) ||
		env["ORDER_OPS_ADDR"] != s.OpsAddrOf(suite.Order, 1) || env["ORDER_MYSQL_DSN"] != s.MySQLDSN(suite.Order) {
		t.Errorf("order#1's env %v: want slot 1's ports and the service's one store", env)
	}

	// A rolling step: the spare slot's process, then the old one stops.
	if err := s.StartReplica(ctx, suite.Order, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.StopReplica(suite.Order, 0); err != nil {
		t.Errorf("StopReplica: %v", err)
	}
	if err := s.StartReplica(ctx, suite.Order, 1); err == nil || !strings.Contains(err.Error(), "order#1 is already running") {
		t.Errorf("StartReplica of a running slot: %v, want 'order#1 is already running'", err)
	}
	if err := s.StartReplica(ctx, suite.Order, 3); err == nil || !strings.Contains(err.Error(), "order has slots 0..2, not 3") {
		t.Errorf("StartReplica of slot 3: %v, want 'order has slots 0..2, not 3'", err)
	}
	if err := s.StartReplica(ctx, suite.Shipping, 1); err == nil {
		t.Error("StartReplica of shipping's slot 1 succeeded; it has one slot")
	}
	if err := s.KillReplica(suite.Order, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.KillReplica(suite.Order, 1); err == nil || !strings.Contains(err.Error(), "order#1 is not running") {
		t.Errorf("second KillReplica: %v, want 'order#1 is not running'", err)
	}
	if crashed := s.Crashed(); len(crashed) != 0 {
		t.Errorf("Crashed after a stop and a kill through the stack: %q, want none", crashed)
	}

	// A replica that dies on its own is reported, by slot.
	s.Env(suite.Order, "ORDER_FAKE_MODE", "crash-after-ready")
	if err := s.StartReplica(ctx, suite.Order, 1); err != nil {
		t.Fatal(err)
	}
	for s.RunningReplica(suite.Order, 1) {
		if ctx.Err() != nil {
			t.Fatal("order#1 never crashed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if crashed := s.Crashed(); len(crashed) != 1 || !strings.Contains(crashed[0], "stack: order#1 exited on its own during the test (exit status 2)") {
		t.Errorf("Crashed = %q, want order#1's crash", crashed)
	}
	rec.runCleanups()
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "order#1 exited on its own") {
		t.Errorf("cleanup reported %q, want order#1's crash only", rec.errs)
	}
}
