package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

// stuckServer answers ListStuckSagas with one saga and records the request.
// The order service's own behaviour is tested in services/order; this is
// the CLI's side: flags to request, answer to table and JSON.
type stuckServer struct {
	orderv1.UnimplementedOrderServiceServer
	got chan *orderv1.ListStuckSagasRequest
}

var stuckProgress = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func (s *stuckServer) ListStuckSagas(_ context.Context, req *orderv1.ListStuckSagasRequest) (*orderv1.ListStuckSagasResponse, error) {
	s.got <- req
	return &orderv1.ListStuckSagasResponse{Truncated: true, Sagas: []*orderv1.StuckSaga{{
		OrderId: "0b6e1a52-8f3c-4c3e-9a51-2f0c7d0b1a11", CustomerId: "c6f0e5a2-3b7d-4e55-8f4c-1a2b3c4d5e6f",
		LastStep: eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED, WaitingFor: eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED,
		WaitingOn: "inventory", LastProgressTime: timestamppb.New(stuckProgress), StalledFor: durationpb.New(90 * time.Second),
		Deadline: timestamppb.New(stuckProgress.Add(2 * time.Minute)),
	}}}, nil
}

func startStuckServer(t *testing.T) (string, *stuckServer) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	fake := &stuckServer{got: make(chan *orderv1.ListStuckSagasRequest, 4)}
	orderv1.RegisterOrderServiceServer(srv, fake)
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), fake
}

func TestStuckTableAndJSON(t *testing.T) {
	addr, fake := startStuckServer(t)

	code, out, stderr := sagactl(t, "stuck", "--token", "x", "--order", addr, "--older-than", "45s", "--limit", "5")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	req := <-fake.got
	if req.GetOlderThan().AsDuration() != 45*time.Second || req.GetPageSize() != 5 {
		t.Errorf("request %v, want older_than 45s and page_size 5", req)
	}
	for _, want := range []string{"WAITING FOR", "0b6e1a52-8f3c-4c3e-9a51-2f0c7d0b1a11", "PAYMENT_PROCESSED", "INVENTORY_UPDATED",
		"inventory", "1m30s", "30s", "more stuck sagas than the 1 shown"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	code, out, stderr = sagactl(t, "stuck", "--token", "x", "--order", addr, "--json")
	if code != exitOK {
		t.Fatalf("--json: exit %d, stderr:\n%s", code, stderr)
	}
	if req := <-fake.got; req.GetOlderThan().AsDuration() != 10*time.Second {
		t.Errorf("default older_than %v, want 10s", req.GetOlderThan().AsDuration())
	}
	var report stuckReport
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if len(report.Sagas) != 1 || !report.Truncated || report.OlderThanSecs != 10 {
		t.Fatalf("report %+v", report)
	}
	if s := report.Sagas[0]; s.LastStep != "PAYMENT_PROCESSED" || s.WaitingFor != "INVENTORY_UPDATED" || s.WaitingOn != "inventory" ||
		s.StalledSecs != 90 || !s.LastProgress.Equal(stuckProgress) {
		t.Errorf("saga %+v", s)
	}
}

func TestStuckUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		inStderr string
	}{
		{[]string{"stuck", "--older-than", "0s"}, "--older-than must be between 1s and 168h"},
		{[]string{"stuck", "--limit", "0"}, "--limit must be between 1 and 100"},
		{[]string{"stuck", "extra"}, "unexpected arguments"},
		{[]string{"stuck", "--token", "x", "--order", "127.0.0.1:1", "--timeout", "2s"}, "list stuck sagas"},
	} {
		code, out, stderr := sagactl(t, tc.args...)
		if code != exitError || out != "" || !strings.Contains(stderr, tc.inStderr) {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s\nwant exit %d and %q", tc.args, code, out, stderr, exitError, tc.inStderr)
		}
	}
}
