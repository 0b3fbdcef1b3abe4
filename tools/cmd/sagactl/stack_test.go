package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/tools/internal/demo"
	"github.com/sagasuite/sagasuite/tools/internal/stack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// stackArgs points every service flag at the stack and gives the command a
// service token of the stack's key.
func stackArgs(t *testing.T, s *stack.Stack, cmd string, extra ...string) []string {
	t.Helper()
	token, err := s.Keys().Mint(auth.Principal{Subject: "sagactl-" + cmd, Roles: []auth.Role{auth.RoleService, auth.RoleCatalogAdmin}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{cmd, "--token", token}
	for _, name := range suite.Services {
		args = append(args, "--"+name, s.GRPCAddr(name))
	}
	return append(args, extra...)
}

// sagactl demo and sagactl bench against the suite as five processes on the
// local real stack: the demo's last stdout line is the summary and its exit
// status follows it — 1 when a scenario ends other than expected, even with
// every order terminal and the invariants holding; the bench's JSON adds up.
func TestDemoAndBenchOnTheRealStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // a cold build of the five services on 2 cores is part of it
	defer cancel()
	// A deadline no busy machine reaches: no order may time out here.
	s := stack.New(t, stack.Options{Env: map[string]map[string]string{suite.Order: {"ORDER_DEADLINE": "10m"}}})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := sagactl(t, stackArgs(t, s, "demo", "--gateway", s.GatewayURL())...)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var sum demo.Summary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("exit %d; last stdout line is not the summary: %v\nstdout:\n%s\nstderr:\n%s", code, err, out, stderr)
	}
	// Without the power to stop services: 7 orders (the cancel races the
	// saga, the deadline path is skipped and the table says so).
	if code != exitOK || !sum.OK() || sum.Orders != 7 || sum.Pending != 0 || sum.Completed+sum.Cancelled != 7 ||
		sum.Completed < 2 || sum.Completed > 3 || !strings.Contains(out, "skipped:\n  - deadline:") {
		t.Fatalf("exit %d, summary %+v\nstdout:\n%s\nstderr:\n%s", code, sum, out, stderr)
	}
	if !strings.Contains(stderr, "demo: placing 7 orders at once") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}

	code, out, stderr = sagactl(t, stackArgs(t, s, "bench", "--orders", "12", "--concurrency", "3", "--json", "--quiet",
		"--mix", "success=50,outofstock=50")...)
	var res struct {
		Placed, Done, Completed, Cancelled int
		Outcomes                           map[string]int
		Errors                             map[string]int
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("exit %d, bench JSON: %v\n%s\nstderr:\n%s", code, err, out, stderr)
	}
	if code != exitOK || res.Placed != 12 || res.Done != 12 || res.Completed != 6 || res.Cancelled != 6 ||
		res.Outcomes["OUT_OF_STOCK"] != 6 || len(res.Errors) != 0 || stderr != "" {
		t.Fatalf("exit %d, result %+v, stderr %q", code, res, stderr)
	}

	// A gateway that declines every charge: the success orders end
	// PAYMENT_FAILED, every order still ends and the books still balance,
	// but the demo did not go as it should, and says so with exit 1.
	// (The stack's shared gateway declines nothing: payment gets an
	// in-process one for this, and the audit leaves the ledger out.)
	s.Env(suite.Payment, "PAYMENT_GATEWAY_URL", "")
	s.Env(suite.Payment, "PAYMENT_GATEWAY_FAILURE_RATE", "1")
	if err := s.Restart(ctx, suite.Payment); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = sagactl(t, stackArgs(t, s, "demo")...)
	lines = strings.Split(strings.TrimRight(out, "\n"), "\n")
	sum = demo.Summary{}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("exit %d; last stdout line is not the summary: %v\nstdout:\n%s\nstderr:\n%s", code, err, out, stderr)
	}
	// At least the two success orders and the shipment-failed one are
	// declined instead; the out-of-stock ones and the declined one end as
	// expected.
	if code != exitProblems || sum.OK() || sum.Unexpected < 3 || sum.Pending != 0 || sum.Invariants != "ok" ||
		!strings.Contains(out, "NO, wanted COMPLETED") || !strings.Contains(stderr, "UNEXPECTED, wanted COMPLETED") {
		t.Fatalf("exit %d, summary %+v; want exit 1, ≥ 3 unexpected, none pending, invariants ok\nstdout:\n%s\nstderr:\n%s", code, sum, out, stderr)
	}
}
