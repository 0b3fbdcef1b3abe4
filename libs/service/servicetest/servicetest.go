// Package servicetest starts a service in-process for its component test:
// the same Run its main calls, on loopback ports picked by the kernel.
package servicetest

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/service"
)

// Wait bounds each step: listening, ready, and stopping again.
const Wait = 2 * time.Minute

// Common is the config.Common of a service under test: gRPC and ops on
// 127.0.0.1:0, quiet text logs, a short shutdown.
func Common() config.Common {
	return config.Common{GRPCAddr: "127.0.0.1:0", OpsAddr: "127.0.0.1:0", LogLevel: config.LevelWarn,
		LogFormat: config.FormatText, ShutdownTimeout: 5 * time.Second}
}

// Start runs run(ctx, rt) in the background, waits until the service listens
// and its /readyz answers 200 (consumers running, store reachable), and
// returns a gRPC connection to it. When the test ends it cancels the service
// and fails the test if Run does not return nil within Wait.
func Start(t testing.TB, rt service.Runtime, run func(context.Context, service.Runtime) error) *grpc.ClientConn {
	t.Helper()
	return Launch(t, rt, run).WaitReady()
}

// Instance is one run of a service started by Launch: several of them on one
// store and consumer group are replicas.
type Instance struct {
	t        testing.TB
	addrs    chan [2]net.Addr
	done     chan error
	cancel   context.CancelFunc
	stopOnce sync.Once
	conn     *grpc.ClientConn
	grpcAddr string
	opsAddr  string
	// webAddr is set by OnWebListening, which Run calls before
	// OnListening: the addrs channel orders the write before WaitReady reads it.
	webAddr string
}

// Launch runs run(ctx, rt) in the background and returns at once, so several
// replicas can start together (and race their migrations) before the test
// waits for any (WaitReady). The instance is stopped when the test ends.
func Launch(t testing.TB, rt service.Runtime, run func(context.Context, service.Runtime) error) *Instance {
	t.Helper()
	i := &Instance{t: t, addrs: make(chan [2]net.Addr, 1), done: make(chan error, 1)}
	rt.OnListening = func(g, o net.Addr) { i.addrs <- [2]net.Addr{g, o} }
	rt.OnWebListening = func(w net.Addr) { i.webAddr = w.String() }
	if rt.Verifier == nil {
		rt.Verifier = Verifier(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	i.cancel = cancel
	go func() { i.done <- run(ctx, rt) }()
	t.Cleanup(i.Stop)
	return i
}

// WaitReady waits until the instance listens and its /readyz answers 200, and
// returns a gRPC connection to it that calls as ServiceIdentity. Call it
// from the test's goroutine.
func (i *Instance) WaitReady() *grpc.ClientConn {
	t := i.t
	t.Helper()
	var a [2]net.Addr
	select {
	case a = <-i.addrs:
	case err := <-i.done:
		i.done <- err // for Stop, which the cleanup runs
		t.Fatalf("Run ended before listening: %v", err)
	case <-time.After(Wait):
		t.Fatalf("service did not listen within %s", Wait)
	}
	readyz := "http://" + a[1].String() + "/readyz"
	deadline := time.Now().Add(Wait)
	for {
		resp, err := http.Get(readyz)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not 200 within %s (last error %v)", readyz, Wait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	i.grpcAddr, i.opsAddr = a[0].String(), a[1].String()
	i.conn = Dial(t, i.grpcAddr, Token(t, ServiceIdentity))
	return i.conn
}

// GRPCAddr is where the instance's gRPC API listens (after WaitReady).
func (i *Instance) GRPCAddr() string { return i.grpcAddr }

// WebAddr is where the instance's gRPC-Web/Connect listener listens (after
// WaitReady), or "" when its config sets no WebAddr.
func (i *Instance) WebAddr() string { return i.webAddr }

// OpsAddr is where the instance's ops server (/metrics, /readyz) listens
// (after WaitReady).
func (i *Instance) OpsAddr() string { return i.opsAddr }

// DialAs connects to the instance calling as p (after WaitReady).
func (i *Instance) DialAs(p auth.Principal) *grpc.ClientConn {
	i.t.Helper()
	return Dial(i.t, i.grpcAddr, Token(i.t, p))
}

// Stop cancels the instance (a graceful shutdown, as a rolling update's
// SIGTERM) and fails the test unless Run returns nil within Wait. Later calls
// do nothing.
func (i *Instance) Stop() {
	i.stopOnce.Do(func() {
		i.cancel()
		select {
		case err := <-i.done:
			if err != nil {
				i.t.Errorf("Run after cancel: %v", err)
			}
		case <-time.After(Wait):
			i.t.Errorf("Run did not stop within %s", Wait)
		}
	})
}

// SagaTopics creates every saga topic under k's prefix and returns k. Each
// service creates only the topics it produces to and waits for those it
// reads; a component test runs one service, so the test creates the others'
// topics in their place (as the dev stack does).
func SagaTopics(t testing.TB, k service.KafkaConfig) service.KafkaConfig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	specs := make([]bus.TopicSpec, len(events.AllTopics))
	for i, base := range events.AllTopics {
		specs[i] = bus.TopicSpec{Name: k.Topic(base), Partitions: k.Partitions, ReplicationFactor: k.ReplicationFactor}
	}
	if err := bus.EnsureTopics(ctx, k.Brokers, specs...); err != nil {
		t.Fatalf("create saga topics: %v", err)
	}
	return k
}
