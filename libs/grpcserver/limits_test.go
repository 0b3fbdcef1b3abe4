package grpcserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/grpcserver"
	"github.com/sagasuite/sagasuite/libs/tlsfiles"
	"github.com/sagasuite/sagasuite/libs/tlsfiles/tlstest"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

var plaintext = grpc.WithTransportCredentials(insecure.NewCredentials())

func TestReflectionOffByDefault(t *testing.T) {
	r := start(t, &orderService{}, time.Second)
	stream, err := reflectionpb.NewServerReflectionClient(r.conn).ServerReflectionInfo(callCtx(t))
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("reflection without Options.Reflection: %v, want Unimplemented", err)
	}
}

func TestMaxRecvMsgBytesRefusesLargeRequest(t *testing.T) {
	svc := &orderService{}
	r := startWith(t, svc, grpcserver.Options{Limits: grpcserver.Limits{MaxRecvMsgBytes: 1024}}, plaintext)
	_, err := r.client.GetOrder(callCtx(t), &orderv1.GetOrderRequest{OrderId: strings.Repeat("x", 2048)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("GetOrder of 2 KiB with a 1 KiB limit: %v, want ResourceExhausted", err)
	}
	if svc.calls.Load() != 0 {
		t.Error("the handler ran for a request over the limit")
	}
	if _, err := r.client.GetOrder(callCtx(t), &orderv1.GetOrderRequest{OrderId: validOrderID}); err != nil {
		t.Fatalf("GetOrder under the limit: %v", err)
	}
}

func TestMaxConcurrentStreamsHoldsBackCallsOverTheLimit(t *testing.T) {
	entered, release := make(chan struct{}, 8), make(chan struct{})
	svc := &orderService{watchOrder: func(_ *orderv1.WatchOrderRequest, stream grpc.ServerStreamingServer[orderv1.WatchOrderResponse]) error {
		entered <- struct{}{}
		select {
		case <-release:
		case <-stream.Context().Done():
		}
		return nil
	}}
	r := startWith(t, svc, grpcserver.Options{Limits: grpcserver.Limits{MaxConcurrentStreams: 2}}, plaintext)
	ctx, cancel := context.WithCancel(callCtx(t))
	defer cancel()
	for range 2 {
		if _, err := r.client.WatchOrder(ctx, &orderv1.WatchOrderRequest{OrderId: validOrderID}); err != nil {
			t.Fatalf("WatchOrder: %v", err)
		}
		select {
		case <-entered:
		case <-time.After(time.Minute):
			t.Fatal("a stream under the limit did not reach the handler")
		}
	}
	// A third call on the connection waits for a free stream: it cannot
	// start while both are open, however long it is given here.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := r.client.GetOrder(short, &orderv1.GetOrderRequest{OrderId: validOrderID})
	cancelShort()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("third call while two streams are open: %v, want DeadlineExceeded (held back)", err)
	}
	if n := svc.calls.Load(); n != 2 {
		t.Fatalf("%d handler calls, want the 2 streams only", n)
	}
	close(release) // both streams end: the next call runs
	if _, err := r.client.GetOrder(callCtx(t), &orderv1.GetOrderRequest{OrderId: validOrderID}); err != nil {
		t.Fatalf("GetOrder after the streams ended: %v", err)
	}
}

// A client that pings without an open call is told to go away (GOAWAY
// ENHANCE_YOUR_CALM "too_many_pings"): keepalive pings cannot keep idle
// connections alive or cost the server work at the client's pace.
func TestKeepaliveEnforcementRefusesPingsWithoutCalls(t *testing.T) {
	r := start(t, &orderService{}, time.Second)
	conn, err := net.DialTimeout("tcp", r.server.Addr().String(), time.Minute)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	framer := http2.NewFramer(conn, conn)
	if err := framer.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := framer.WritePing(false, [8]byte{byte(i)}); err != nil {
			break // the server may have closed already
		}
	}
	for {
		f, err := framer.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeEnhanceYourCalm || !bytes.Equal(ga.DebugData(), []byte("too_many_pings")) {
				t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", ga.ErrCode, ga.DebugData())
			}
			return
		}
	}
}

func TestTLSServesConfiguredCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first, second := tlstest.SelfSigned(t, "first"), tlstest.SelfSigned(t, "second")
	stamp := time.Now().Add(-time.Hour)
	first.Write(t, certFile, keyFile, stamp)
	reloader, err := tlsfiles.NewReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	trusting := func(p tlstest.Pair) grpc.DialOption {
		return grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: p.Pool(), ServerName: "localhost"}))
	}
	r := startWith(t, &orderService{}, grpcserver.Options{TLS: reloader.ServerConfig()}, trusting(first))
	if _, err := r.client.GetOrder(callCtx(t), &orderv1.GetOrderRequest{OrderId: validOrderID}); err != nil {
		t.Fatalf("GetOrder over TLS: %v", err)
	}

	call := func(dial grpc.DialOption) error {
		conn, err := grpc.NewClient(r.server.Addr().String(), dial)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = orderv1.NewOrderServiceClient(conn).GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: validOrderID})
		return err
	}
	if err := call(plaintext); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext call to a TLS server: %v, want Unavailable", err)
	}
	// The certificate is renewed on disk: new connections get the new one.
	second.Write(t, certFile, keyFile, stamp.Add(time.Minute))
	if err := call(trusting(second)); err != nil {
		t.Errorf("call trusting the renewed certificate: %v", err)
	}
	if err := call(trusting(first)); status.Code(err) != codes.Unavailable {
		t.Errorf("call trusting only the replaced certificate: %v, want Unavailable", err)
	}
}
