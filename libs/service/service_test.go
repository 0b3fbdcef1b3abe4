package service_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/grpcserver"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

func spec(t *testing.T, prefix string) service.Spec {
	return service.Spec{
		Name:    "svctest",
		Common:  config.Common{GRPCAddr: "127.0.0.1:0", OpsAddr: "127.0.0.1:0", LogLevel: "warn", LogFormat: "text", ShutdownTimeout: 5 * time.Second},
		Kafka:   service.KafkaConfig{Brokers: testenv.Brokers(), TopicPrefix: prefix, Partitions: 1, ReplicationFactor: 1},
		Runtime: service.Runtime{SharedTelemetry: true, Registry: prometheus.NewRegistry(), Verifier: servicetest.Verifier(t)},
	}
}

// Without a verifier handed in, Run needs <P>_AUTH_*: it refuses to start,
// naming every missing variable, before it touches anything else.
func TestRunRefusesToStartWithoutAuthConfig(t *testing.T) {
	s := spec(t, testenv.UniqueName("svctest-")+".")
	s.Verifier = nil
	err := service.Run(context.Background(), s)
	for _, want := range []string{"SVCTEST_AUTH_JWKS_FILE", "SVCTEST_AUTH_JWKS_URL", "SVCTEST_AUTH_ISSUER", "SVCTEST_AUTH_AUDIENCE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run without auth config = %v, want it to name %s", err, want)
		}
	}
	s.Common.Auth = config.AuthConfig{JWKSFile: t.TempDir() + "/none.json", Issuer: "i", Audience: "a"}
	if err := service.Run(context.Background(), s); err == nil || !strings.Contains(err.Error(), "JWKS file") {
		t.Errorf("Run with a missing JWKS file = %v, want it to say so", err)
	}
}

// A bad exporter variable stops Run at start-up, naming the variable.
func TestBadTracesExporterStopsStartUpNamingTheVariable(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "bogus")
	s := spec(t, testenv.UniqueName("svctest-")+".")
	s.SharedTelemetry = false // the service sets telemetry up itself, as a binary does
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := service.Run(ctx, s)
	if err == nil || !strings.Contains(err.Error(), `svctest: telemetry: OTEL_TRACES_EXPORTER="bogus": unknown exporter`) {
		t.Errorf("Run with OTEL_TRACES_EXPORTER=bogus = %v, want an error naming the variable", err)
	}
}

// A service runs its gRPC server, ops server, consumers and loops under one
// owner: ready when all run, consuming under its topic prefix, stopped cleanly.
func TestRunServesConsumesAndStopsCleanly(t *testing.T) {
	prefix := testenv.UniqueName("svctest-") + "."
	s := spec(t, prefix)
	s.Produces = []string{events.TopicOrders} // it reads its own topic: created, not waited for
	handled := make(chan string, 1)
	s.Consumers = []service.Consumer{{Group: "svctest", Topics: []string{events.TopicOrders},
		Handler: func(ctx context.Context, env *eventsv1.Envelope) error { handled <- env.GetEventId(); return nil }}}
	loopRan := make(chan struct{})
	s.Background = map[string]func(context.Context) error{"loop": func(ctx context.Context) error {
		close(loopRan)
		<-ctx.Done()
		return nil
	}}
	addrs := make(chan [2]net.Addr, 1)
	s.OnListening = func(g, o net.Addr) { addrs <- [2]net.Addr{g, o} }

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, s) }()
	var a [2]net.Addr
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("Run ended early: %v", err)
	case <-time.After(2 * time.Minute): // a bound for a hang
		t.Fatal("service did not listen within 2 min")
	}

	deadline := time.Now().Add(2 * time.Minute) // a bound for a hang
	for {
		resp, err := http.Get("http://" + a[1].String() + "/readyz")
		if err == nil && resp.StatusCode == http.StatusOK {
			resp.Body.Close()
			break
		}
		if err == nil {
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never 200: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	conn, err := grpc.NewClient(a[0].String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}

	env, err := events.New(events.Meta{OrderID: events.NewID(), CustomerID: events.NewID(), Producer: "test",
		CausationID: events.NewID(), OccurredAt: time.Now()}, &eventsv1.OrderCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := bus.EncodeEnvelope(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Kafka.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Publish(ctx, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-handled:
		if id != env.GetEventId() {
			t.Fatalf("handled %s, want %s", id, env.GetEventId())
		}
	case <-time.After(2 * time.Minute): // a bound for a hang
		t.Fatal("event published under the prefix was not consumed")
	}
	select { // waited for, not polled: the loop's goroutine may start late on a busy machine
	case <-loopRan:
	case <-time.After(2 * time.Minute):
		t.Error("background loop never ran")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(2 * time.Minute): // a bound for a hang
		t.Fatal("Run did not stop within 2 min")
	}
	if _, err := net.DialTimeout("tcp", a[0].String(), time.Second); err == nil {
		t.Error("gRPC port still open after Run returned")
	}
}

func TestAFailingPartStopsTheService(t *testing.T) {
	s := spec(t, testenv.UniqueName("svctest-")+".")
	s.Background = map[string]func(context.Context) error{"broken": func(context.Context) error { return errors.New("store gone") }}
	done := make(chan error, 1)
	go func() { done <- service.Run(context.Background(), s) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "store gone") {
			t.Fatalf("Run = %v, want the loop's error", err)
		}
	case <-time.After(2 * time.Minute): // a bound for a hang
		t.Fatal("service kept running after a part failed")
	}
}

// The gRPC readiness status (what a Kubernetes grpc readiness probe asks)
// follows the same check as /readyz, both ways, while the server's own status
// (liveness) stays SERVING throughout.
func TestGRPCReadinessFollowsTheReadyCheck(t *testing.T) {
	s := spec(t, testenv.UniqueName("svctest-")+".")
	var storeDown atomic.Bool
	storeDown.Store(true)
	s.Ready = func(context.Context) error {
		if storeDown.Load() {
			return errors.New("store unreachable")
		}
		return nil
	}
	addrs := make(chan [2]net.Addr, 1)
	s.OnListening = func(g, o net.Addr) { addrs <- [2]net.Addr{g, o} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, s) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(2 * time.Minute): // a bound for a hang
			t.Error("Run did not stop within 2 min")
		}
	}()
	var a [2]net.Addr
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("Run ended early: %v", err)
	case <-time.After(2 * time.Minute): // a bound for a hang
		t.Fatal("service did not listen within 2 min")
	}
	conn, err := grpc.NewClient(a[0].String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	status := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("Check(%q): %v", service, err)
		}
		return resp.GetStatus()
	}
	readyzCode := func() int {
		t.Helper()
		resp, err := http.Get("http://" + a[1].String() + "/readyz")
		if err != nil {
			t.Fatalf("/readyz: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute) // a bound for a hang
		for status(grpcserver.ReadinessService) != want {
			if time.Now().After(deadline) {
				t.Fatalf("readiness never %v within 2 min", want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	if got := status(grpcserver.ReadinessService); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("readiness with the store down = %v, want NOT_SERVING", got)
	}
	if code := readyzCode(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the store down = %d, want 503", code)
	}
	if got := status(""); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("liveness with the store down = %v, want SERVING", got)
	}

	storeDown.Store(false)
	waitFor(healthpb.HealthCheckResponse_SERVING)
	if code := readyzCode(); code != http.StatusOK {
		t.Errorf("/readyz with the store up = %d, want 200", code)
	}

	storeDown.Store(true)
	waitFor(healthpb.HealthCheckResponse_NOT_SERVING)
	if got := status(""); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("liveness after the store went down = %v, want SERVING", got)
	}
}
