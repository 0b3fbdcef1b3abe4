package telemetry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
)

// startOps runs OpsServer on a free local port until the test ends.
func startOps(t *testing.T, reg *prometheus.Registry, ready func() error, opts ...OpsOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeListener(ctx, OpsServer(ln.Addr().String(), reg, ready, opts...), ln, time.Second)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestOpsServerProbes(t *testing.T) {
	var notReady atomic.Pointer[error]
	base := startOps(t, prometheus.NewRegistry(), func() error {
		if err := notReady.Load(); err != nil {
			return *err
		}
		return nil
	})

	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", code)
	}
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz while ready = %d, want 200", code)
	}

	brokerDown := errors.New("kafka: no brokers reachable")
	notReady.Store(&brokerDown)
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, brokerDown.Error()) {
		t.Errorf("/readyz while not ready = %d %q, want 503 naming the cause", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while not ready = %d, want 200 (liveness ignores readiness)", code)
	}

	notReady.Store(nil)
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after recovery = %d, want 200", code)
	}
}

func TestOpsServerExposesMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	shutdown, err := Setup(context.Background(), Options{ServiceName: "order", Registry: reg})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	base := startOps(t, reg, nil)

	counter, err := otel.Meter("sagasuite/order").Int64Counter("orders_created")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(context.Background(), 3)

	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	var found bool
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, "orders_created_total{") && strings.HasSuffix(line, " 3") {
			found = true
		}
	}
	if !found {
		t.Errorf("/metrics lacks orders_created_total = 3:\n%s", body)
	}
	for _, want := range []string{"go_goroutines", "target_info{"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// pprof is served only when switched on: a default ops server answers 404
// under /debug/pprof/, an enabled one gives the index, a named profile, the
// command line and a (one-second) CPU profile.
func TestOpsServerPprofOnlyWhenEnabled(t *testing.T) {
	paths := []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline", "/debug/pprof/heap"}
	for _, base := range []string{startOps(t, prometheus.NewRegistry(), nil), startOps(t, prometheus.NewRegistry(), nil, WithPprof(false))} {
		for _, p := range paths {
			if code, _ := get(t, base+p); code != http.StatusNotFound {
				t.Errorf("pprof off: GET %s = %d, want 404", p, code)
			}
		}
	}

	base := startOps(t, prometheus.NewRegistry(), nil, WithPprof(true))
	for _, p := range paths {
		if code, body := get(t, base+p); code != http.StatusOK || body == "" {
			t.Errorf("pprof on: GET %s = %d (%d bytes), want 200 with a body", p, code, len(body))
		}
	}
	if _, body := get(t, base+"/debug/pprof/goroutine?debug=1"); !strings.Contains(body, "goroutine profile:") {
		t.Errorf("goroutine profile is not one:\n%.300s", body)
	}
	if code, body := get(t, base+"/debug/pprof/profile?seconds=1"); code != http.StatusOK || len(body) == 0 {
		t.Errorf("CPU profile = %d (%d bytes), want 200 with a profile", code, len(body))
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with pprof on = %d", code)
	}
}

func TestServeStopsWhenContextEnds(t *testing.T) {
	srv := OpsServer("127.0.0.1:0", prometheus.NewRegistry(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, time.Second) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}
