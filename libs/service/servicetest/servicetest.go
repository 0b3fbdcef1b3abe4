// Package servicetest starts a service in-process for its component test:
// the same Run its main calls, on loopback ports picked by the kernel.
package servicetest

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sagasuite/sagasuite/libs/config"
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
	addrs := make(chan [2]net.Addr, 1)
	rt.OnListening = func(g, o net.Addr) { addrs <- [2]net.Addr{g, o} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, rt) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel: %v", err)
			}
		case <-time.After(Wait):
			t.Errorf("Run did not stop within %s", Wait)
		}
	})
	var a [2]net.Addr
	select {
	case a = <-addrs:
	case err := <-done:
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
	conn, err := grpc.NewClient(a[0].String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
