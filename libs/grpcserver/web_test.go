package grpcserver_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"
	"github.com/sagasuite/sagasuite/libs/logging"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

const (
	allowedOrigin = "http://127.0.0.1:8090"
	getOrderPath  = "/sagasuite.order.v1.OrderService/GetOrder"
	watchPath     = "/sagasuite.order.v1.OrderService/WatchOrder"
)

type webServer struct {
	base   string // http://127.0.0.1:port
	keys   keyPair
	logs   *logBuffer
	stop   context.CancelFunc
	served chan error
}

// startWeb serves svc with auth (testPolicy) and a browser listener that
// allows allowedOrigin.
func startWeb(t *testing.T, svc *orderService, shutdownTimeout time.Duration) *webServer {
	t.Helper()
	keys := newKeys(t)
	logs := &logBuffer{}
	srv, err := grpcserver.New(grpcserver.Options{
		Addr:            "127.0.0.1:0",
		Logger:          logging.New(logs, slog.LevelDebug, logging.FormatJSON),
		Register:        func(s *grpc.Server) { orderv1.RegisterOrderServiceServer(s, svc) },
		Auth:            &grpcserver.Auth{Verifier: keys.v, Policy: testPolicy},
		ShutdownTimeout: shutdownTimeout,
		Web:             &grpcserver.Web{Addr: "127.0.0.1:0", AllowedOrigins: []string{allowedOrigin}},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	w := &webServer{base: "http://" + srv.WebAddr().String(), keys: keys, logs: logs, stop: stop, served: make(chan error, 1)}
	go func() { w.served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-w.served:
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return w
}

func (w *webServer) token(t *testing.T, roles ...auth.Role) string {
	return w.keys.mint(t, auth.Principal{Subject: "0190c0de-0000-7000-8000-00000000c0c0", Roles: roles}, time.Now(), time.Hour)
}

// postJSON makes a Connect unary call with a JSON body, as curl or a page would.
func postJSON(t *testing.T, url, token, body string) (int, map[string]any) {
	t.Helper()
	return servicetest.ConnectJSON(callCtx(t), t, url, token, body)
}

func TestWebConnectJSONUnaryGoesThroughAuthAndValidation(t *testing.T) {
	svc := &orderService{}
	w := startWeb(t, svc, 5*time.Second)
	customer := w.token(t, auth.RoleCustomer)

	code, body := postJSON(t, w.base+getOrderPath, customer, `{"orderId":"`+validOrderID+`"}`)
	if code != http.StatusOK {
		t.Fatalf("with a token: status %d, body %v", code, body)
	}
	if got := body["order"].(map[string]any)["orderId"]; got != validOrderID {
		t.Errorf("order id %v, want %s (body %v)", got, validOrderID, body)
	}

	code, body = postJSON(t, w.base+getOrderPath, "", `{"orderId":"`+validOrderID+`"}`)
	if code != http.StatusUnauthorized || body["code"] != "unauthenticated" {
		t.Errorf("without a token: status %d, body %v, want 401 unauthenticated", code, body)
	}

	// Snake-case field names are accepted too (protojson reads both).
	code, body = postJSON(t, w.base+getOrderPath, customer, `{"order_id":"not-a-uuid"}`)
	msg, _ := body["message"].(string)
	if code != http.StatusBadRequest || body["code"] != "invalid_argument" || !strings.Contains(msg, "order_id") {
		t.Errorf("bad order id: status %d, body %v, want 400 invalid_argument naming order_id", code, body)
	}
	if calls := svc.calls.Load(); calls != 1 {
		t.Errorf("handler ran %d times, want 1 (refused calls must not reach it)", calls)
	}
}

// clients are the browser protocols, each over HTTP/1.1 and h2c.
func clients(t *testing.T) map[string]struct {
	http *http.Client
	opts []connect.ClientOption
} {
	h1 := &http.Client{Transport: &http.Transport{}}
	h2c := &http.Client{Transport: &http.Transport{Protocols: func() *http.Protocols {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		return p
	}()}}
	t.Cleanup(h1.CloseIdleConnections)
	t.Cleanup(h2c.CloseIdleConnections)
	return map[string]struct {
		http *http.Client
		opts []connect.ClientOption
	}{
		"gRPC-Web binary, HTTP/1.1": {h1, []connect.ClientOption{connect.WithGRPCWeb()}},
		"gRPC-Web binary, h2c":      {h2c, []connect.ClientOption{connect.WithGRPCWeb()}},
		"Connect binary, HTTP/1.1":  {h1, nil},
		"Connect JSON, h2c":         {h2c, []connect.ClientOption{connect.WithProtoJSON()}},
	}
}

func TestWebBrowserProtocolsUnary(t *testing.T) {
	w := startWeb(t, &orderService{}, 5*time.Second)
	customer := w.token(t, auth.RoleCustomer)
	for name, c := range clients(t) {
		client := connect.NewClient[orderv1.GetOrderRequest, orderv1.GetOrderResponse](c.http, w.base+getOrderPath, c.opts...)

		req := connect.NewRequest(&orderv1.GetOrderRequest{OrderId: validOrderID})
		req.Header().Set("Authorization", "Bearer "+customer)
		resp, err := client.CallUnary(callCtx(t), req)
		if err != nil || resp.Msg.GetOrder().GetOrderId() != validOrderID {
			t.Errorf("%s: GetOrder = %v, %v", name, resp, err)
			continue
		}

		_, err = client.CallUnary(callCtx(t), connect.NewRequest(&orderv1.GetOrderRequest{OrderId: validOrderID}))
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("%s: without a token: %v, want unauthenticated", name, err)
		}

		bad := connect.NewRequest(&orderv1.GetOrderRequest{OrderId: "nope"})
		bad.Header().Set("Authorization", "Bearer "+customer)
		_, err = client.CallUnary(callCtx(t), bad)
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "order_id") {
			t.Errorf("%s: bad order id: %v, want invalid_argument naming order_id", name, err)
		}
	}
}

func TestWebWatchOrderStreams(t *testing.T) {
	const updates = 3
	svc := &orderService{
		watchOrder: func(req *orderv1.WatchOrderRequest, stream grpc.ServerStreamingServer[orderv1.WatchOrderResponse]) error {
			for _, s := range []orderv1.OrderStatus{orderv1.OrderStatus_ORDER_STATUS_PENDING, orderv1.OrderStatus_ORDER_STATUS_PENDING, orderv1.OrderStatus_ORDER_STATUS_COMPLETED}[:updates] {
				if err := stream.Send(&orderv1.WatchOrderResponse{Order: &orderv1.Order{OrderId: req.GetOrderId(), Status: s}}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	w := startWeb(t, svc, 5*time.Second)
	operator, customer := w.token(t, auth.RoleOperator), w.token(t, auth.RoleCustomer)
	for name, c := range clients(t) {
		client := connect.NewClient[orderv1.WatchOrderRequest, orderv1.WatchOrderResponse](c.http, w.base+watchPath, c.opts...)
		req := connect.NewRequest(&orderv1.WatchOrderRequest{OrderId: validOrderID})
		req.Header().Set("Authorization", "Bearer "+operator)
		stream, err := client.CallServerStream(callCtx(t), req)
		if err != nil {
			t.Errorf("%s: WatchOrder: %v", name, err)
			continue
		}
		var got []orderv1.OrderStatus
		for stream.Receive() {
			got = append(got, stream.Msg().GetOrder().GetStatus())
		}
		if err := stream.Err(); err != nil || len(got) != updates || got[updates-1] != orderv1.OrderStatus_ORDER_STATUS_COMPLETED {
			t.Errorf("%s: received %v, err %v; want %d updates ending COMPLETED", name, got, err, updates)
		}
		stream.Close()

		// The policy admits operators alone to WatchOrder (testPolicy).
		denied := connect.NewRequest(&orderv1.WatchOrderRequest{OrderId: validOrderID})
		denied.Header().Set("Authorization", "Bearer "+customer)
		stream, err = client.CallServerStream(callCtx(t), denied)
		if err == nil {
			for stream.Receive() {
				t.Errorf("%s: a customer received %v", name, stream.Msg())
			}
			err = stream.Err()
			stream.Close()
		}
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("%s: WatchOrder as customer: %v, want permission_denied", name, err)
		}
	}
}

func TestWebShutdownEndsWebStreams(t *testing.T) {
	svc := &orderService{
		watchOrder: func(req *orderv1.WatchOrderRequest, stream grpc.ServerStreamingServer[orderv1.WatchOrderResponse]) error {
			if err := stream.Send(&orderv1.WatchOrderResponse{Order: &orderv1.Order{OrderId: req.GetOrderId()}}); err != nil {
				return err
			}
			<-stream.Context().Done() // a watch that would run until the order ends
			return stream.Context().Err()
		},
	}
	// A grace far longer than the test's bound: the stop must not wait for it.
	w := startWeb(t, svc, 2*time.Minute)
	client := connect.NewClient[orderv1.WatchOrderRequest, orderv1.WatchOrderResponse](http.DefaultClient, w.base+watchPath)
	req := connect.NewRequest(&orderv1.WatchOrderRequest{OrderId: validOrderID})
	req.Header().Set("Authorization", "Bearer "+w.token(t, auth.RoleOperator))
	stream, err := client.CallServerStream(callCtx(t), req)
	if err != nil {
		t.Fatalf("WatchOrder: %v", err)
	}
	defer stream.Close()
	if !stream.Receive() {
		t.Fatalf("first snapshot: %v", stream.Err())
	}
	w.stop()
	for stream.Receive() {
		t.Errorf("after shutdown began: received %v", stream.Msg())
	}
	if code := connect.CodeOf(stream.Err()); code != connect.CodeUnavailable {
		t.Errorf("watch after shutdown began: %v, want unavailable", stream.Err())
	}
	select {
	case err := <-w.served:
		w.served <- err
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve still running a minute into a 2-minute grace: the web stream held the stop")
	}
}

func TestWebCORSAnswersAllowedOriginsOnly(t *testing.T) {
	w := startWeb(t, &orderService{}, 5*time.Second)
	preflight := func(origin string) http.Header {
		req, err := http.NewRequestWithContext(callCtx(t), http.MethodOptions, w.base+getOrderPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,connect-protocol-version")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("preflight from %s: status %d", origin, resp.StatusCode)
		}
		return resp.Header
	}
	h := preflight(allowedOrigin)
	if h.Get("Access-Control-Allow-Origin") != allowedOrigin {
		t.Errorf("allowed origin: Allow-Origin %q", h.Get("Access-Control-Allow-Origin"))
	}
	allowHeaders := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
	for _, want := range []string{"authorization", "content-type", "connect-protocol-version", "connect-timeout-ms", "x-grpc-web", "grpc-timeout", "x-user-agent"} {
		if !strings.Contains(allowHeaders, want) {
			t.Errorf("Allow-Headers %q lacks %s", allowHeaders, want)
		}
	}
	if m := h.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") || !strings.Contains(m, "GET") {
		t.Errorf("Allow-Methods %q", m)
	}
	if h.Get("Access-Control-Allow-Credentials") != "" {
		t.Error("credentials allowed: tokens travel in a header, cookies must not")
	}

	for _, other := range []string{"http://evil.example", "http://127.0.0.1:8091", "null"} {
		for key := range preflight(other) {
			if strings.HasPrefix(key, "Access-Control-") {
				t.Errorf("preflight from %s answered %s", other, key)
			}
		}
	}

	// The answer itself: readable by the allowed page (status headers exposed), not by others.
	call := func(origin string) http.Header {
		req, err := http.NewRequestWithContext(callCtx(t), http.MethodPost, w.base+getOrderPath, strings.NewReader(`{"orderId":"`+validOrderID+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", origin)
		req.Header.Set("Authorization", "Bearer "+w.token(t, auth.RoleCustomer))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	h = call(allowedOrigin)
	if h.Get("Access-Control-Allow-Origin") != allowedOrigin || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Grpc-Status") {
		t.Errorf("call from allowed origin: Allow-Origin %q, Expose-Headers %q", h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Expose-Headers"))
	}
	if h := call("http://evil.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("call from another origin: Allow-Origin %q", h.Get("Access-Control-Allow-Origin"))
	}
}

func TestWebRefusesBadOriginsAtStart(t *testing.T) {
	for _, origin := range []string{"*", "example.com", "https://shop.example.com/app"} {
		srv, err := grpcserver.New(grpcserver.Options{Addr: "127.0.0.1:0", Web: &grpcserver.Web{Addr: "127.0.0.1:0", AllowedOrigins: []string{origin}}})
		if err == nil {
			srv.Close()
			t.Errorf("origin %q accepted", origin)
			continue
		}
		if !strings.Contains(err.Error(), "web allowed origin") || !strings.Contains(err.Error(), origin) {
			t.Errorf("origin %q: error %v, want one naming the setting and the origin", origin, err)
		}
	}
	_, err := grpcserver.New(grpcserver.Options{Addr: "127.0.0.1:0", Web: &grpcserver.Web{Addr: "127.0.0.1:notaport"}})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:notaport") {
		t.Errorf("bad web address: %v, want an error naming it", err)
	}
}

// A web call in flight when shutdown begins finishes: the web listener is
// drained before grpc-go's GracefulStop, which would cut ServeHTTP calls.
func TestWebGracefulStopFinishesInFlightCall(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	svc := &orderService{
		getOrder: func(_ context.Context, req *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
			close(entered)
			<-release
			return &orderv1.GetOrderResponse{Order: &orderv1.Order{OrderId: req.GetOrderId()}}, nil
		},
	}
	w := startWeb(t, svc, time.Minute)
	type result struct {
		code int
		body map[string]any
	}
	inFlight := make(chan result, 1)
	token := w.token(t, auth.RoleCustomer)
	go func() {
		code, body := postJSON(t, w.base+getOrderPath, token, `{"orderId":"`+validOrderID+`"}`)
		inFlight <- result{code, body}
	}()
	<-entered
	w.stop()

	// Release the handler only once stopping has begun: the web listener
	// refuses new connections.
	addr := strings.TrimPrefix(w.base, "http://")
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("web listener still accepts connections 30s after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)

	got := <-inFlight
	if got.code != http.StatusOK {
		t.Fatalf("in-flight web GetOrder: status %d, body %v; want it to finish", got.code, got.body)
	}
	select {
	case err := <-w.served:
		w.served <- err
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after the call finished")
	}
}
