package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/grpcserver"
	"github.com/sagasuite/sagasuite/libs/logging"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	opsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/ops/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/tools/internal/console"
	"github.com/sagasuite/sagasuite/web"
)

const (
	orderID  = "0190c0de-0000-7000-8000-0000000000a1"
	issuer   = "https://issuer.test"
	audience = "sagasuite-test"
)

// orderService answers GetOrder, and WatchOrder one update per step the test allows, so a
// proxy that held messages back would stall the stream instead of passing it.
type orderService struct {
	orderv1.UnimplementedOrderServiceServer
	steps chan struct{} // one receive before each update after the first
}

func (s *orderService) GetOrder(_ context.Context, req *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
	if req.GetOrderId() != orderID {
		return nil, status.Error(codes.NotFound, "no such order")
	}
	return &orderv1.GetOrderResponse{Order: &orderv1.Order{OrderId: orderID, Status: orderv1.OrderStatus_ORDER_STATUS_PENDING}}, nil
}

var watchUpdates = []orderv1.OrderStatus{orderv1.OrderStatus_ORDER_STATUS_PENDING, orderv1.OrderStatus_ORDER_STATUS_PENDING, orderv1.OrderStatus_ORDER_STATUS_COMPLETED}

func (s *orderService) WatchOrder(req *orderv1.WatchOrderRequest, stream grpc.ServerStreamingServer[orderv1.WatchOrderResponse]) error {
	for i, st := range watchUpdates {
		if i > 0 {
			select {
			case <-s.steps:
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		if err := stream.Send(&orderv1.WatchOrderResponse{Order: &orderv1.Order{OrderId: req.GetOrderId(), Status: st}}); err != nil {
			return err
		}
	}
	return nil
}

// inventoryService answers ListProducts with one product, to show the path picks the service.
type inventoryService struct {
	inventoryv1.UnimplementedInventoryServiceServer
}

func (inventoryService) ListProducts(context.Context, *inventoryv1.ListProductsRequest) (*inventoryv1.ListProductsResponse, error) {
	return &inventoryv1.ListProductsResponse{Products: []*inventoryv1.Product{{Sku: "TEST-MUG"}}}, nil
}

// opsService is the operations API every service serves under the same method path: it
// answers with its service's name, to show the /api/<service>/ prefix picks the service.
type opsService struct {
	opsv1.UnimplementedOperationsServiceServer
	name string
}

func (o opsService) GetDeliveryStatus(context.Context, *opsv1.GetDeliveryStatusRequest) (*opsv1.GetDeliveryStatusResponse, error) {
	return &opsv1.GetDeliveryStatusResponse{Service: o.name}, nil
}

// policyFor admits roles to every method of the given services.
func policyFor(policy grpcserver.Policy, roles []auth.Role, descs ...*grpc.ServiceDesc) grpcserver.Policy {
	for _, d := range descs {
		for _, m := range d.Methods {
			policy["/"+d.ServiceName+"/"+m.MethodName] = roles
		}
		for _, m := range d.Streams {
			policy["/"+d.ServiceName+"/"+m.StreamName] = roles
		}
	}
	return policy
}

type stack struct {
	console string // http://127.0.0.1:port
	token   string // an operator's
	order   *orderService
	logs    *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveWeb starts a real grpcserver with auth and a browser listener that allows no origin
// (the console calls it server to server), returning the listener's base URL.
func serveWeb(t *testing.T, v *auth.Verifier, policy grpcserver.Policy, register func(*grpc.Server)) string {
	t.Helper()
	srv, err := grpcserver.New(grpcserver.Options{
		Addr:     "127.0.0.1:0",
		Logger:   logging.New(io.Discard, slog.LevelError, logging.FormatJSON),
		Register: register,
		Auth:     &grpcserver.Auth{Verifier: v, Policy: policy},
		Web:      &grpcserver.Web{Addr: "127.0.0.1:0"},
	})
	if err != nil {
		t.Fatalf("grpcserver.New: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-served:
		case <-time.After(30 * time.Second):
			t.Error("grpcserver did not stop")
		}
	})
	return "http://" + srv.WebAddr().String()
}

// startStack runs order and inventory on real grpcserver web listeners, the other three
// services' URLs on a closed port, and the console in front of them.
func startStack(t *testing.T) *stack {
	t.Helper()
	key, err := auth.GenerateSigningKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewSigner(key, issuer, audience)
	if err != nil {
		t.Fatal(err)
	}
	public := signer.PublicJWKS()
	v, err := auth.NewVerifier(context.Background(), auth.VerifierConfig{Keys: &public, Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	token, err := signer.Mint(auth.Principal{Subject: "ops-1", Roles: []auth.Role{auth.RoleOperator}}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ops := []auth.Role{auth.RoleOperator}
	order := &orderService{steps: make(chan struct{})}
	orderURL := serveWeb(t, v, policyFor(grpcserver.Policy{}, ops, &orderv1.OrderService_ServiceDesc, &opsv1.OperationsService_ServiceDesc),
		func(s *grpc.Server) {
			orderv1.RegisterOrderServiceServer(s, order)
			opsv1.RegisterOperationsServiceServer(s, opsService{name: "order"})
		})
	inventoryURL := serveWeb(t, v, policyFor(grpcserver.Policy{}, ops, &inventoryv1.InventoryService_ServiceDesc, &opsv1.OperationsService_ServiceDesc),
		func(s *grpc.Server) {
			inventoryv1.RegisterInventoryServiceServer(s, inventoryService{})
			opsv1.RegisterOperationsServiceServer(s, opsService{name: "inventory"})
		})

	// A port nothing listens on (below 32768, so no self-connect): taken and released.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()

	cfg, err := config.LoadFrom[console.Config](console.Prefix, []string{
		"CONSOLE_ADDR=127.0.0.1:0", "CONSOLE_ORDER_URL=" + orderURL, "CONSOLE_INVENTORY_URL=" + inventoryURL + "/",
		"CONSOLE_PAYMENT_URL=" + down, "CONSOLE_SHIPPING_URL=" + down, "CONSOLE_NOTIFICATION_URL=" + down,
		"CONSOLE_SHUTDOWN_TIMEOUT=2s",
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, stop := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- console.Run(ctx, cfg, logging.New(logs, slog.LevelDebug, logging.FormatJSON), func(a net.Addr) { addr <- a })
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("console.Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("console did not start listening within 30s")
	}
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("console.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("console did not stop")
		}
	})
	return &stack{console: base, token: token, order: order, logs: logs}
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound for a hang
	t.Cleanup(cancel)
	return ctx
}

func TestConsoleForwardsTheBrowserProtocols(t *testing.T) {
	s := startStack(t)
	h1 := &http.Client{Transport: &http.Transport{}} // browsers' fetch over HTTP/1.1
	t.Cleanup(h1.CloseIdleConnections)

	// Where /config.json sends the page: <origin>/api/<service>.
	base := func(service string) string { return s.console + web.ServicePathPrefix + service }

	t.Run("Connect JSON unary", func(t *testing.T) {
		for _, url := range []string{base("order"), s.console} { // the page's base, and the bare method path
			code, body := servicetest.ConnectJSON(callCtx(t), t, url+"/sagasuite.order.v1.OrderService/GetOrder", s.token, `{"orderId":"`+orderID+`"}`)
			if code != http.StatusOK || body["order"].(map[string]any)["orderId"] != orderID {
				t.Errorf("%s: status %d, body %v", url, code, body)
			}
		}
		// The caller's token went through: without one the service refuses.
		code, body := servicetest.ConnectJSON(callCtx(t), t, base("order")+"/sagasuite.order.v1.OrderService/GetOrder", "", `{"orderId":"`+orderID+`"}`)
		if code != http.StatusUnauthorized || body["code"] != "unauthenticated" {
			t.Errorf("without a token: status %d, body %v; want 401 unauthenticated from the service", code, body)
		}
	})

	for name, opts := range map[string][]connect.ClientOption{
		"gRPC-Web binary": {connect.WithGRPCWeb()},
		"Connect binary":  nil,
	} {
		t.Run(name+" unary", func(t *testing.T) {
			client := connect.NewClient[orderv1.GetOrderRequest, orderv1.GetOrderResponse](h1, base("order")+"/sagasuite.order.v1.OrderService/GetOrder", opts...)
			req := connect.NewRequest(&orderv1.GetOrderRequest{OrderId: orderID})
			req.Header().Set("Authorization", "Bearer "+s.token)
			resp, err := client.CallUnary(callCtx(t), req)
			if err != nil || resp.Msg.GetOrder().GetOrderId() != orderID {
				t.Fatalf("GetOrder = %v, %v", resp, err)
			}
			missing := connect.NewRequest(&orderv1.GetOrderRequest{OrderId: "0190c0de-0000-7000-8000-0000000000ff"})
			missing.Header().Set("Authorization", "Bearer "+s.token)
			if _, err := client.CallUnary(callCtx(t), missing); connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("unknown order: %v, want not_found from the service", err)
			}
			inv := connect.NewClient[inventoryv1.ListProductsRequest, inventoryv1.ListProductsResponse](h1, base("inventory")+"/sagasuite.inventory.v1.InventoryService/ListProducts", opts...)
			ireq := connect.NewRequest(&inventoryv1.ListProductsRequest{})
			ireq.Header().Set("Authorization", "Bearer "+s.token)
			iresp, err := inv.CallUnary(callCtx(t), ireq)
			if err != nil || len(iresp.Msg.GetProducts()) != 1 || iresp.Msg.GetProducts()[0].GetSku() != "TEST-MUG" {
				t.Errorf("ListProducts through the inventory path = %v, %v", iresp, err)
			}
			// The operations API has one method path on every service: the prefix picks it.
			for _, svc := range []string{"order", "inventory"} {
				ops := connect.NewClient[opsv1.GetDeliveryStatusRequest, opsv1.GetDeliveryStatusResponse](h1, base(svc)+"/sagasuite.ops.v1.OperationsService/GetDeliveryStatus", opts...)
				oreq := connect.NewRequest(&opsv1.GetDeliveryStatusRequest{})
				oreq.Header().Set("Authorization", "Bearer "+s.token)
				oresp, err := ops.CallUnary(callCtx(t), oreq)
				if err != nil || oresp.Msg.GetService() != svc {
					t.Errorf("GetDeliveryStatus under %s = %v, %v; want the %s service's answer", base(svc), oresp, err, svc)
				}
			}
		})
		t.Run(name+" WatchOrder stream", func(t *testing.T) {
			client := connect.NewClient[orderv1.WatchOrderRequest, orderv1.WatchOrderResponse](h1, base("order")+"/sagasuite.order.v1.OrderService/WatchOrder", opts...)
			req := connect.NewRequest(&orderv1.WatchOrderRequest{OrderId: orderID})
			req.Header().Set("Authorization", "Bearer "+s.token)
			stream, err := client.CallServerStream(callCtx(t), req)
			if err != nil {
				t.Fatalf("WatchOrder: %v", err)
			}
			defer stream.Close()
			var got []orderv1.OrderStatus
			for stream.Receive() {
				got = append(got, stream.Msg().GetOrder().GetStatus())
				// The service sends the next update only now: each one has crossed the proxy
				// while the stream is still open.
				if len(got) < len(watchUpdates) {
					select {
					case s.order.steps <- struct{}{}:
					case <-callCtx(t).Done():
						t.Fatal("the service did not wait for the next step")
					}
				}
			}
			if err := stream.Err(); err != nil || fmt.Sprint(got) != fmt.Sprint(watchUpdates) {
				t.Errorf("received %v, err %v; want %v", got, err, watchUpdates)
			}
		})
	}

	t.Run("a service that does not answer", func(t *testing.T) {
		client := connect.NewClient[orderv1.GetOrderRequest, orderv1.GetOrderResponse](h1, base("payment")+"/sagasuite.payment.v1.PaymentService/GetPayment")
		_, err := client.CallUnary(callCtx(t), connect.NewRequest(&orderv1.GetOrderRequest{}))
		if connect.CodeOf(err) != connect.CodeUnavailable {
			t.Errorf("call to a stopped service: %v, want unavailable", err)
		}
		if !strings.Contains(s.logs.String(), `"service":"payment"`) {
			t.Errorf("no log line names the payment service:\n%s", s.logs)
		}
	})
}

func TestConsoleServesPageHealthAndNothingElse(t *testing.T) {
	s := startStack(t)
	get := func(method, path string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequestWithContext(callCtx(t), method, s.console+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body), res.Header
	}
	if code, body, _ := get("GET", "/"); code != http.StatusOK || !strings.Contains(body, "app.js") {
		t.Errorf("GET /: %d %.200s", code, body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body, _ := get("GET", p); code != http.StatusOK || body != "ok\n" {
			t.Errorf("GET %s: %d %q", p, code, body)
		}
	}
	code, body, hdr := get("GET", "/config.json")
	var cfg struct{ Services map[string]string }
	if err := json.Unmarshal([]byte(body), &cfg); err != nil || code != http.StatusOK {
		t.Fatalf("GET /config.json: %d %v %s", code, err, body)
	}
	for _, name := range []string{"order", "inventory", "payment", "shipping", "notification"} {
		if want := s.console + web.ServicePathPrefix + name; cfg.Services[name] != want {
			t.Errorf("config.json %s = %q, want %s on the console's own origin", name, cfg.Services[name], want)
		}
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self';") {
		t.Errorf("CSP %q: want connect-src 'self' only", csp)
	}
	for _, p := range []string{
		"/no-such-file.js",
		"/sagasuite.unknown.v1.X/Y",                       // no such service
		"/sagasuite.order.v1.OrderService/GetOrder/extra", // not a method path
		"/sagasuite.order.v1.OrderService/../../healthz",  // nothing odd reaches a service
		"/grpc.health.v1.Health/Check",                    // health is not forwarded
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		"/sagasuite.ops.v1.OperationsService/GetDeliveryStatus", // served by every service: which one?
		"/api/order",                             // a base, no method
		"/api/order/grpc.health.v1.Health/Check", // only sagasuite APIs
		"/api/unknown/sagasuite.order.v1.OrderService/GetOrder",  // no such service
		"/api/order/sagasuite.order.v1.OrderService/GetOrder/x",  // not a method path
		"/api/order/../sagasuite.order.v1.OrderService/GetOrder", // nothing odd
		"/api/order/sagasuite.order.v1.OrderService%2FGetOrder",  // escaped slash
	} {
		if code, _, _ := get("POST", p); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 404 (or 405)", p, code)
		}
		if code, _, _ := get("GET", p); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
}

func TestBadConfigNamesTheVariable(t *testing.T) {
	good := map[string]string{
		"CONSOLE_ORDER_URL": "http://order:8091", "CONSOLE_INVENTORY_URL": "http://inventory:8092",
		"CONSOLE_PAYMENT_URL": "http://payment:8093", "CONSOLE_SHIPPING_URL": "https://shipping:8094",
		"CONSOLE_NOTIFICATION_URL": "http://notification:8095",
	}
	environ := func(change map[string]string) []string {
		var env []string
		for k, v := range good {
			if nv, ok := change[k]; ok {
				v = nv
			}
			if v != "-" {
				env = append(env, k+"="+v)
			}
		}
		for k, v := range change {
			if _, ok := good[k]; !ok {
				env = append(env, k+"="+v)
			}
		}
		return env
	}
	cfg, err := config.LoadFrom[console.Config](console.Prefix, environ(nil))
	if err != nil || cfg.Addr != ":8090" {
		t.Fatalf("good config: %+v, %v", cfg, err)
	}
	for _, tc := range []struct {
		change map[string]string
		want   []string
	}{
		{map[string]string{"CONSOLE_ORDER_URL": "-"}, []string{"CONSOLE_ORDER_URL"}},
		{map[string]string{"CONSOLE_PAYMENT_URL": "payment:8093", "CONSOLE_SHIPPING_URL": "ftp://shipping"}, []string{"CONSOLE_PAYMENT_URL", "CONSOLE_SHIPPING_URL"}},
		{map[string]string{"CONSOLE_NOTIFICATION_URL": "http://notification:8095/api"}, []string{"CONSOLE_NOTIFICATION_URL"}},
		{map[string]string{"CONSOLE_ADDR": "8090"}, []string{"CONSOLE_ADDR"}},
		{map[string]string{"CONSOLE_UPSTREAM_CA_FILE": "/no/such/ca.pem"}, []string{"CONSOLE_UPSTREAM_CA_FILE"}},
		{map[string]string{"CONSOLE_SHUTDOWN_TIMEOUT": "soon"}, []string{"CONSOLE_SHUTDOWN_TIMEOUT"}},
		{map[string]string{"CONSOLE_LOG_LEVEL": "loud"}, []string{"CONSOLE_LOG_LEVEL"}},
	} {
		_, err := config.LoadFrom[console.Config](console.Prefix, environ(tc.change))
		if err == nil {
			t.Errorf("%v: accepted", tc.change)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not name %s", tc.change, err, w)
			}
		}
	}
	// Handler refuses a config that skipped Load too.
	bad := cfg
	bad.OrderURL = "order"
	if _, err := console.Handler(bad, slog.Default()); err == nil || !strings.Contains(err.Error(), "CONSOLE_ORDER_URL") {
		t.Errorf("Handler with a bad order URL: %v", err)
	}
	// Run reports an address it cannot listen on, naming the variable.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := cfg
	busy.Addr = taken.Addr().String()
	err = console.Run(context.Background(), busy, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "CONSOLE_ADDR") {
		t.Errorf("Run on a taken address: %v", err)
	}
	var ve *config.VarError
	_, err = config.LoadFrom[console.Config](console.Prefix, environ(map[string]string{"CONSOLE_ADDR": "nope"}))
	if !errors.As(err, &ve) || ve.Key != "CONSOLE_ADDR" {
		t.Errorf("bad CONSOLE_ADDR: %v, want a VarError for it", err)
	}
}
