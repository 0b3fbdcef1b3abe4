package service_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/libs/tlsfiles/tlstest"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// runService starts s and returns its gRPC and ops addresses; it is stopped
// (and must stop cleanly) when the test ends.
func runService(t *testing.T, s service.Spec) (grpcAddr, opsAddr net.Addr) {
	t.Helper()
	addrs := make(chan [2]net.Addr, 1)
	s.OnListening = func(g, o net.Addr) { addrs <- [2]net.Addr{g, o} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, s) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel: %v", err)
			}
		case <-time.After(2 * time.Minute): // a bound for a hang
			t.Error("Run did not stop within 2 min")
		}
	})
	select {
	case a := <-addrs:
		return a[0], a[1]
	case err := <-done:
		t.Fatalf("Run ended early: %v", err)
	case <-time.After(2 * time.Minute): // a bound for a hang
		t.Fatal("service did not listen within 2 min")
	}
	return nil, nil
}

func readyz(client *http.Client, scheme string, ops net.Addr) (int, error) {
	resp, err := client.Get(scheme + "://" + ops.String() + "/readyz")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// A service creates only the topics it produces to; a consumer of another
// service's topic waits, not ready and not failing, until that topic's
// owner creates it, then consumes it.
func TestServiceCreatesOnlyItsOwnTopicsAndWaitsForOthers(t *testing.T) {
	prefix := testenv.UniqueName("svctopics-") + "."
	s := spec(t, prefix)
	s.Produces = []string{events.TopicPayments}
	handled := make(chan string, 1)
	s.Consumers = []service.Consumer{{Group: "svctopics", Topics: []string{events.TopicOrders},
		Handler: func(_ context.Context, env *eventsv1.Envelope) error { handled <- env.GetEventId(); return nil }}}
	_, ops := runService(t, s)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	all := make([]string, len(events.AllTopics))
	for i, base := range events.AllTopics {
		all[i] = prefix + base
	}
	// Its own topic appears; no other saga topic does.
	if err := bus.WaitForTopics(ctx, testenv.Brokers(), bus.Security{}, time.Second, nil, prefix+events.TopicPayments); err != nil {
		t.Fatalf("own topic never created: %v", err)
	}
	missing, err := bus.MissingTopics(ctx, testenv.Brokers(), bus.Security{}, all...)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, name := range all {
		if name != prefix+events.TopicPayments {
			want = append(want, name)
		}
	}
	if !slices.Equal(missing, want) {
		t.Fatalf("missing topics %v, want every saga topic but its own: %v", missing, want)
	}
	// Waiting for orders.v1 is "not ready", not a failure (runService's
	// cleanup checks Run ends without error).
	if code, err := readyz(http.DefaultClient, "http", ops); err != nil || code == http.StatusOK {
		t.Fatalf("/readyz while its input topic is missing: %d %v, want not ready", code, err)
	}

	// The order service (here: the test) starts and creates its topic.
	if err := bus.EnsureTopics(ctx, testenv.Brokers(), bus.TopicSpec{Name: prefix + events.TopicOrders, Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
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
	p := bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(prefix))
	defer p.Close()
	if err := p.Publish(ctx, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-handled:
		if id != env.GetEventId() {
			t.Fatalf("handled %s, want %s", id, env.GetEventId())
		}
	case <-ctx.Done():
		t.Fatal("the consumer never consumed the topic created after it started")
	}
	for {
		code, err := readyz(http.DefaultClient, "http", ops)
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/readyz never 200 once the topic exists: %d %v", code, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// With a certificate configured, both listeners speak TLS only.
func TestServiceServesTLSOnGRPCAndOps(t *testing.T) {
	dir := t.TempDir()
	pair := tlstest.SelfSigned(t, "svc")
	s := spec(t, testenv.UniqueName("svctls-")+".")
	s.Common.TLSCertFile, s.Common.TLSKeyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pair.Write(t, s.Common.TLSCertFile, s.Common.TLSKeyFile, time.Now())
	grpcAddr, ops := runService(t, s)

	trusted := &tls.Config{RootCAs: pair.Pool(), ServerName: "localhost"}
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: trusted}}
	if code, err := readyz(client, "https", ops); err != nil || code != http.StatusOK {
		t.Fatalf("https /readyz: %d %v", code, err)
	}
	// Go's TLS server answers a plaintext request with a 400 at most.
	if code, err := readyz(&http.Client{Timeout: time.Minute}, "http", ops); err == nil && code == http.StatusOK {
		t.Fatal("plaintext /readyz answered 200 on a TLS-configured ops port")
	}

	conn, err := grpc.NewClient(grpcAddr.String(), grpc.WithTransportCredentials(credentials.NewTLS(trusted)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health over TLS: %v %v", h, err)
	}
}
