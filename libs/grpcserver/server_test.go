package grpcserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/grpcserver"
	"github.com/sagasuite/sagasuite/libs/logging"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

const (
	orderServiceName = "sagasuite.order.v1.OrderService"
	validOrderID     = "0190f7a4-7e3c-7b1e-9c2d-3f4a5b6c7d8e"
)

// orderService is a stand-in OrderService whose behaviour each test sets.
type orderService struct {
	orderv1.UnimplementedOrderServiceServer
	getOrder   func(context.Context, *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error)
	watchOrder func(*orderv1.WatchOrderRequest, grpc.ServerStreamingServer[orderv1.WatchOrderResponse]) error
	calls      atomic.Int32
}

func (s *orderService) GetOrder(ctx context.Context, req *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
	s.calls.Add(1)
	if s.getOrder != nil {
		return s.getOrder(ctx, req)
	}
	return &orderv1.GetOrderResponse{Order: &orderv1.Order{OrderId: req.GetOrderId()}}, nil
}

func (s *orderService) WatchOrder(req *orderv1.WatchOrderRequest, stream grpc.ServerStreamingServer[orderv1.WatchOrderResponse]) error {
	s.calls.Add(1)
	if s.watchOrder != nil {
		return s.watchOrder(req, stream)
	}
	return stream.Send(&orderv1.WatchOrderResponse{Order: &orderv1.Order{OrderId: req.GetOrderId()}})
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("decode log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// running is a server under test with a client connected to it.
type running struct {
	server *grpcserver.Server
	conn   *grpc.ClientConn
	client orderv1.OrderServiceClient
	logs   *logBuffer
	stop   context.CancelFunc
	served chan error // Serve's result
}

func start(t *testing.T, svc *orderService, shutdownTimeout time.Duration) *running {
	t.Helper()
	return startWith(t, svc, grpcserver.Options{ShutdownTimeout: shutdownTimeout},
		grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// startWith starts a server with opts (address, logger, service filled in)
// and a client dialed with dial.
func startWith(t *testing.T, svc *orderService, opts grpcserver.Options, dial ...grpc.DialOption) *running {
	t.Helper()
	return startLogging(t, svc, slog.LevelDebug, opts, dial...)
}

// startLogging is startWith with the server's logger at level.
func startLogging(t *testing.T, svc *orderService, level slog.Level, opts grpcserver.Options, dial ...grpc.DialOption) *running {
	t.Helper()
	logs := &logBuffer{}
	opts.Addr = "127.0.0.1:0"
	opts.Logger = logging.New(logs, level, logging.FormatJSON)
	opts.ServiceName = "order"
	opts.Register = func(s *grpc.Server) { orderv1.RegisterOrderServiceServer(s, svc) }
	srv, err := grpcserver.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &running{server: srv, logs: logs, stop: stop, served: make(chan error, 1)}
	go func() { r.served <- srv.Serve(ctx) }()

	r.conn, err = grpc.NewClient(srv.Addr().String(), dial...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	r.client = orderv1.NewOrderServiceClient(r.conn)
	t.Cleanup(func() {
		stop()
		_ = r.conn.Close()
		select {
		case <-r.served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return r
}

// waitServed returns Serve's result, failing after limit.
func (r *running) waitServed(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-r.served:
		r.served <- err // let Cleanup see it too
		return err
	case <-time.After(limit):
		t.Fatalf("Serve still running after %v", limit)
		return nil
	}
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound for a hang
	t.Cleanup(cancel)
	return ctx
}

func TestHealthReportsEveryService(t *testing.T) {
	r := start(t, &orderService{}, time.Second)
	health := healthpb.NewHealthClient(r.conn)
	check := func(service string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		resp, err := health.Check(callCtx(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("Check(%q): %v", service, err)
		}
		if resp.GetStatus() != want {
			t.Errorf("Check(%q) = %v, want %v", service, resp.GetStatus(), want)
		}
	}
	check("", healthpb.HealthCheckResponse_SERVING)
	check(orderServiceName, healthpb.HealthCheckResponse_SERVING)

	r.server.SetNotServing()
	check("", healthpb.HealthCheckResponse_NOT_SERVING)
	check(orderServiceName, healthpb.HealthCheckResponse_NOT_SERVING)

	r.server.SetServing()
	check(orderServiceName, healthpb.HealthCheckResponse_SERVING)

	// Readiness is its own name: not ready until told, and independent of the
	// liveness statuses above.
	check(grpcserver.ReadinessService, healthpb.HealthCheckResponse_NOT_SERVING)
	r.server.SetReady(true)
	check(grpcserver.ReadinessService, healthpb.HealthCheckResponse_SERVING)
	check("", healthpb.HealthCheckResponse_SERVING)
	r.server.SetReady(false)
	check(grpcserver.ReadinessService, healthpb.HealthCheckResponse_NOT_SERVING)
	check(orderServiceName, healthpb.HealthCheckResponse_SERVING)

	if _, err := health.Check(callCtx(t), &healthpb.HealthCheckRequest{Service: "no.such.Service"}); status.Code(err) != codes.NotFound {
		t.Errorf("Check(unknown service) error = %v, want NotFound", err)
	}
}

func TestReflectionListsServicesWhenEnabled(t *testing.T) {
	r := startWith(t, &orderService{}, grpcserver.Options{Reflection: true},
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	stream, err := reflectionpb.NewServerReflectionClient(r.conn).ServerReflectionInfo(callCtx(t))
	if err != nil {
		t.Fatalf("ServerReflectionInfo: %v", err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatalf("send: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{orderServiceName, "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
}

func TestPanicBecomesInternalAndServerKeepsServing(t *testing.T) {
	var panicking atomic.Bool
	panicking.Store(true)
	svc := &orderService{
		getOrder: func(_ context.Context, req *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
			if panicking.Load() {
				panic("nil map in order repository")
			}
			return &orderv1.GetOrderResponse{Order: &orderv1.Order{OrderId: req.GetOrderId()}}, nil
		},
		watchOrder: func(*orderv1.WatchOrderRequest, grpc.ServerStreamingServer[orderv1.WatchOrderResponse]) error {
			panic("watch exploded")
		},
	}
	r := start(t, svc, time.Second)

	_, err := r.client.GetOrder(callCtx(t), &orderv1.GetOrderRequest{OrderId: validOrderID})
	if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "nil map") {
		t.Fatalf("GetOrder after panic: %v; want Internal without the panic text", err)
	}

	stream, err := r.client.WatchOrder(callCtx(t), &orderv1.WatchOrderRequest{OrderId: validOrderID})
	if err != nil {
		t.Fatalf("WatchOrder: %v", err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Internal {
		t.Fatalf("WatchOrder stream after panic: %v, want Internal", err)
	}

	panicking.Store(false)
	resp, err := r.client.GetOrder(callCtx(t), &orderv1.GetOrderRequest{OrderId: validOrderID})
	if err != nil || resp.GetOrder().GetOrderId() != validOrderID {
		t.Fatalf("GetOrder after recovery = %v, %v; want the order", resp, err)
	}

	var logged int
	for _, rec := range r.logs.records(t) {
		if rec["msg"] != "panic in gRPC handler" {
			continue
		}
		logged++
		stack, _ := rec["stack"].(string)
		if rec["level"] != "ERROR" || rec["panic"] == nil || !strings.Contains(stack, "grpcserver_test") {
			t.Errorf("panic log %v: want level ERROR, the panic value and a stack through the handler", rec)
		}
	}
	if logged != 2 {
		t.Errorf("logged %d panics, want 2", logged)
	}
}

func TestInvalidRequestIsRejectedBeforeTheHandler(t *testing.T) {
	svc := &orderService{}
	r := start(t, svc, time.Second)

	_, err := r.client.GetOrder(callCtx(t), &orderv1.GetOrderRequest{OrderId: "not-a-uuid"})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "order_id: ") {
		t.Fatalf("GetOrder(bad id) = %v; want InvalidArgument starting with the field path order_id", err)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
				if v.GetDescription() == "" {
					t.Errorf("field violation %v has no description", v)
				}
			}
		}
	}
	if !slices.Equal(fields, []string{"order_id"}) {
		t.Errorf("BadRequest field violations = %v, want [order_id]", fields)
	}

	stream, err := r.client.WatchOrder(callCtx(t), &orderv1.WatchOrderRequest{})
	if err != nil {
		t.Fatalf("WatchOrder: %v", err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "order_id") {
		t.Fatalf("WatchOrder(no id) = %v; want InvalidArgument naming order_id", err)
	}

	if n := svc.calls.Load(); n != 0 {
		t.Errorf("handlers ran %d times for invalid requests, want 0", n)
	}
}

func TestCallsAreLoggedWithTraceIDs(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	previous := otel.GetTracerProvider()
	otel.SetTracerProvider(provider)
	t.Cleanup(func() {
		otel.SetTracerProvider(previous)
		_ = provider.Shutdown(context.Background())
	})

	r := start(t, &orderService{}, time.Second)
	if _, err := r.client.GetOrder(callCtx(t), &orderv1.GetOrderRequest{OrderId: validOrderID}); err != nil {
		t.Fatalf("GetOrder: %v", err)
	}
	if _, err := healthpb.NewHealthClient(r.conn).Check(callCtx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health Check: %v", err)
	}

	var serverSpan sdktrace.ReadOnlySpan
	for _, s := range spans.GetSpans().Snapshots() {
		if s.Name() == orderServiceName+"/GetOrder" {
			serverSpan = s
		}
		if strings.HasPrefix(s.Name(), "grpc.health") {
			t.Errorf("health check traced: %s", s.Name())
		}
	}
	if serverSpan == nil {
		t.Fatalf("no server span for GetOrder among %v", spans.GetSpans())
	}

	var calls []map[string]any
	for _, rec := range r.logs.records(t) {
		if rec["msg"] == "gRPC call" {
			calls = append(calls, rec)
		}
	}
	if len(calls) != 1 {
		t.Fatalf("logged %d calls (%v), want 1: health checks are not logged", len(calls), calls)
	}
	call := calls[0]
	if call["grpc.method"] != "/"+orderServiceName+"/GetOrder" || call["grpc.code"] != "OK" ||
		call["service"] != "order" || call["duration_ms"] == nil {
		t.Errorf("call log %v: want method, code OK, service and duration_ms", call)
	}
	if call["trace_id"] != serverSpan.SpanContext().TraceID().String() {
		t.Errorf("call log trace_id = %v, want the server span's %s", call["trace_id"], serverSpan.SpanContext().TraceID())
	}
}

// At INFO a successful call logs nothing (one line per call at load is the
// bulk of the log volume); a refused one still logs, at INFO.
func TestSuccessfulCallsAreSilentAtInfo(t *testing.T) {
	svc := &orderService{}
	r := startLogging(t, svc, slog.LevelInfo, grpcserver.Options{ShutdownTimeout: time.Second},
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	for range 3 {
		if _, err := r.client.GetOrder(callCtx(t), &orderv1.GetOrderRequest{OrderId: validOrderID}); err != nil {
			t.Fatalf("GetOrder: %v", err)
		}
	}
	stream, err := r.client.WatchOrder(callCtx(t), &orderv1.WatchOrderRequest{OrderId: validOrderID})
	if err != nil {
		t.Fatalf("WatchOrder: %v", err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("WatchOrder Recv: %v", err)
	}
	svc.getOrder = func(context.Context, *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
		return nil, status.Error(codes.NotFound, "no such order")
	}
	if _, err := r.client.GetOrder(callCtx(t), &orderv1.GetOrderRequest{OrderId: validOrderID}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetOrder: %v, want NotFound", err)
	}
	// The refusal is logged after the response is sent, and the stream's
	// line after its end reaches the server: wait for the refusal's line.
	var calls []map[string]any
	deadline := time.Now().Add(time.Minute) // a bound for a hang
	for {
		calls = calls[:0]
		for _, rec := range r.logs.records(t) {
			if rec["msg"] == "gRPC call" {
				calls = append(calls, rec)
			}
		}
		if len(calls) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(calls) != 1 || calls[0]["grpc.code"] != "NotFound" || calls[0]["level"] != "INFO" {
		t.Fatalf("logged calls %v, want only the NotFound one, at INFO", calls)
	}
}

func TestGracefulStopFinishesInFlightCall(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	svc := &orderService{
		getOrder: func(_ context.Context, req *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
			close(entered)
			<-release
			return &orderv1.GetOrderResponse{Order: &orderv1.Order{OrderId: req.GetOrderId()}}, nil
		},
	}
	r := start(t, svc, 10*time.Second)

	type result struct {
		resp *orderv1.GetOrderResponse
		err  error
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, err := r.client.GetOrder(callCtx(t), &orderv1.GetOrderRequest{OrderId: validOrderID})
		inFlight <- result{resp, err}
	}()
	<-entered
	r.stop()

	// Serve must wait for the call: give it time to (wrongly) return.
	select {
	case err := <-r.served:
		t.Fatalf("Serve returned %v while a call was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	// A new connection is refused once stopping has begun.
	if conn, err := net.DialTimeout("tcp", r.server.Addr().String(), time.Second); err == nil {
		_ = conn.Close()
		t.Error("listener still accepts connections during graceful stop")
	}
	close(release)

	got := <-inFlight
	if got.err != nil || got.resp.GetOrder().GetOrderId() != validOrderID {
		t.Fatalf("in-flight GetOrder = %v, %v; want it to finish", got.resp, got.err)
	}
	if err := r.waitServed(t, 5*time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestStopIsBoundedByShutdownTimeout(t *testing.T) {
	entered := make(chan struct{})
	svc := &orderService{
		getOrder: func(ctx context.Context, _ *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
			close(entered)
			<-ctx.Done() // a handler stuck until the connection is cut
			return nil, ctx.Err()
		},
	}
	const timeout = 300 * time.Millisecond
	r := start(t, svc, timeout)

	inFlight := make(chan error, 1)
	go func() {
		_, err := r.client.GetOrder(callCtx(t), &orderv1.GetOrderRequest{OrderId: validOrderID})
		inFlight <- err
	}()
	<-entered
	began := time.Now()
	r.stop()
	if err := r.waitServed(t, 5*time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if elapsed := time.Since(began); elapsed < timeout {
		t.Errorf("Serve returned after %v, before the %v grace period", elapsed, timeout)
	}
	if err := <-inFlight; status.Code(err) != codes.Unavailable && status.Code(err) != codes.Canceled {
		t.Errorf("cut call error = %v, want Unavailable or Canceled", err)
	}
}

func TestShutdownEndsWatchStreams(t *testing.T) {
	svc := &orderService{
		watchOrder: func(req *orderv1.WatchOrderRequest, stream grpc.ServerStreamingServer[orderv1.WatchOrderResponse]) error {
			if err := stream.Send(&orderv1.WatchOrderResponse{Order: &orderv1.Order{OrderId: req.GetOrderId()}}); err != nil {
				return err
			}
			<-stream.Context().Done() // a watch that would run until the order ends
			return stream.Context().Err()
		},
	}
	r := start(t, svc, 30*time.Second)

	stream, err := r.client.WatchOrder(callCtx(t), &orderv1.WatchOrderRequest{OrderId: validOrderID})
	if err != nil {
		t.Fatalf("WatchOrder: %v", err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("first snapshot: %v", err)
	}
	r.stop()
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("watch after shutdown began: %v, want Unavailable", err)
	}
	// Well inside the 30s grace period: the watch did not hold the stop.
	if err := r.waitServed(t, 5*time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestNewFailsOnBadAddress(t *testing.T) {
	_, err := grpcserver.New(grpcserver.Options{Addr: "127.0.0.1:notaport"})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:notaport") {
		t.Fatalf("New(bad addr) error = %v, want one naming the address", err)
	}
}

func TestServeTwiceFails(t *testing.T) {
	srv, err := grpcserver.New(grpcserver.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Serve(ctx); err != nil {
		t.Fatalf("first Serve: %v", err)
	}
	if err := srv.Serve(ctx); err == nil {
		t.Fatal("second Serve succeeded")
	}
	if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Close: %v", err)
	}
}

func TestInvalidArgumentNamesTheFieldInMessageAndDetail(t *testing.T) {
	st := status.Convert(grpcserver.InvalidArgument("order_id", "must be a UUID"))
	if st.Code() != codes.InvalidArgument || st.Message() != "order_id: must be a UUID" {
		t.Fatalf("status %v", st)
	}
	var field string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 {
			field = br.GetFieldViolations()[0].GetField()
		}
	}
	if field != "order_id" {
		t.Fatalf("BadRequest detail names %q, want order_id", field)
	}
}
