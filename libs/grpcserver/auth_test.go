package grpcserver_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"
	"github.com/sagasuite/sagasuite/libs/logging"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "sagasuite-test"
)

// testPolicy admits customers and operators to GetOrder, operators alone to
// WatchOrder, and names the rest of OrderService for no one but services.
var testPolicy = grpcserver.Policy{
	orderv1.OrderService_GetOrder_FullMethodName:       {auth.RoleCustomer, auth.RoleOperator},
	orderv1.OrderService_WatchOrder_FullMethodName:     {auth.RoleOperator},
	orderv1.OrderService_CreateOrder_FullMethodName:    {auth.RoleService},
	orderv1.OrderService_ListOrders_FullMethodName:     {auth.RoleService},
	orderv1.OrderService_CancelOrder_FullMethodName:    {auth.RoleService},
	orderv1.OrderService_ListStuckSagas_FullMethodName: {auth.RoleOperator},
}

type keyPair struct {
	key    any
	signer *auth.Signer
	v      *auth.Verifier
}

func newKeys(t *testing.T) keyPair {
	t.Helper()
	key, err := auth.GenerateSigningKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewSigner(key, testIssuer, testAudience)
	if err != nil {
		t.Fatal(err)
	}
	public := signer.PublicJWKS()
	v, err := auth.NewVerifier(context.Background(), auth.VerifierConfig{Keys: &public, Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{key: key, signer: signer, v: v}
}

func (k keyPair) mint(t *testing.T, p auth.Principal, issued time.Time, ttl time.Duration) string {
	t.Helper()
	tok, err := k.signer.Mint(p, issued, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type authServer struct {
	addr string
	logs *logBuffer
	svc  *orderService
}

func startWithAuth(t *testing.T, keys keyPair) *authServer {
	t.Helper()
	logs := &logBuffer{}
	svc := &orderService{}
	srv, err := grpcserver.New(grpcserver.Options{
		Addr:     "127.0.0.1:0",
		Logger:   logging.New(logs, slog.LevelDebug, logging.FormatJSON),
		Register: func(s *grpc.Server) { orderv1.RegisterOrderServiceServer(s, svc) },
		Auth:     &grpcserver.Auth{Verifier: keys.v, Policy: testPolicy},
		// Served here to show it needs no token (off unless configured).
		Reflection: true,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return &authServer{addr: srv.Addr().String(), logs: logs, svc: svc}
}

func dialWith(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func withAuthorization(values ...string) context.Context {
	md := metadata.MD{}
	for _, v := range values {
		md.Append("authorization", v)
	}
	return metadata.NewOutgoingContext(context.Background(), md)
}

func TestAuthRefusesCallersWithoutAValidTokenAndAdmitsByPolicy(t *testing.T) {
	keys := newKeys(t)
	s := startWithAuth(t, keys)
	client := orderv1.NewOrderServiceClient(dialWith(t, s.addr))
	now := time.Now()
	customer := auth.Principal{Subject: "cust-1", Roles: []auth.Role{auth.RoleCustomer}}
	operator := auth.Principal{Subject: "op", Roles: []auth.Role{auth.RoleOperator}}
	good := keys.mint(t, customer, now, time.Hour)
	other := newKeys(t) // a key the server does not trust
	longToken := strings.Repeat("a", 9<<10)

	var seen auth.Principal
	s.svc.getOrder = func(ctx context.Context, req *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
		seen, _ = auth.FromContext(ctx)
		return &orderv1.GetOrderResponse{Order: &orderv1.Order{OrderId: req.GetOrderId()}}, nil
	}

	for _, tc := range []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"no header", context.Background(), codes.Unauthenticated},
		{"not bearer", withAuthorization("Basic " + good), codes.Unauthenticated},
		{"empty bearer", withAuthorization("Bearer "), codes.Unauthenticated},
		{"garbage", withAuthorization("Bearer not.a.token"), codes.Unauthenticated},
		{"two headers", withAuthorization("Bearer "+good, "Bearer "+good), codes.Unauthenticated},
		{"too long", withAuthorization("Bearer " + longToken), codes.Unauthenticated},
		{"expired", withAuthorization("Bearer " + keys.mint(t, customer, now.Add(-2*time.Hour), time.Hour)), codes.Unauthenticated},
		{"untrusted key", withAuthorization("Bearer " + other.mint(t, customer, now, time.Hour)), codes.Unauthenticated},
		{"role not admitted", withAuthorization("Bearer " + keys.mint(t, auth.Principal{Subject: "cat", Roles: []auth.Role{auth.RoleCatalogAdmin}}, now, time.Hour)), codes.PermissionDenied},
		{"customer", withAuthorization("Bearer " + good), codes.OK},
		{"lower-case scheme", withAuthorization("bearer " + good), codes.OK},
	} {
		before := s.svc.calls.Load()
		_, err := client.GetOrder(tc.ctx, &orderv1.GetOrderRequest{OrderId: validOrderID})
		if got := status.Code(err); got != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
			continue
		}
		called := s.svc.calls.Load() > before
		if called != (tc.want == codes.OK) {
			t.Errorf("%s: handler called = %v", tc.name, called)
		}
		// Fixed texts: nothing that tells an attacker which check failed.
		if msg := status.Convert(err).Message(); tc.want == codes.Unauthenticated && msg != "missing or invalid bearer token" ||
			tc.want == codes.PermissionDenied && msg != "permission denied" {
			t.Errorf("%s: message %q", tc.name, msg)
		}
	}
	if seen.Subject != "cust-1" || !seen.Has(auth.RoleCustomer) {
		t.Errorf("handler saw principal %+v, want cust-1 as customer", seen)
	}

	// The stream interceptor: a customer may not watch here, an operator may.
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"no token", context.Background(), codes.Unauthenticated},
		{"customer", withAuthorization("Bearer " + good), codes.PermissionDenied},
		{"operator", withAuthorization("Bearer " + keys.mint(t, operator, now, time.Hour)), codes.OK},
	} {
		stream, err := client.WatchOrder(tc.ctx, &orderv1.WatchOrderRequest{OrderId: validOrderID})
		if err == nil {
			_, err = stream.Recv()
		}
		if got := status.Code(err); got != tc.want {
			t.Errorf("WatchOrder as %s: %v, want %s", tc.name, err, tc.want)
		}
	}

	// Every refusal is logged with its reason, and no log line holds a token.
	var reasons int
	for _, rec := range s.logs.records(t) {
		if rec["msg"] == "gRPC call not authenticated" && rec["reason"] != "" {
			reasons++
		}
	}
	if reasons < 8 {
		t.Errorf("%d refusals logged with a reason, want at least 8", reasons)
	}
	s.logs.mu.Lock()
	logged := s.logs.buf.String()
	s.logs.mu.Unlock()
	if strings.Contains(logged, good[:40]) || strings.Contains(logged, longToken[:100]) {
		t.Error("a token appears in the logs")
	}
}

// Probes and grpcurl's reflection work without a token.
func TestHealthAndReflectionNeedNoToken(t *testing.T) {
	s := startWithAuth(t, newKeys(t))
	conn := dialWith(t, s.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health without a token: %v, %v", resp, err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("reflection without a token: %v", err)
	}
}

// A server whose policy misses a method, names one it does not serve, or
// has no verifier does not start.
func TestNewRefusesAnIncompletePolicy(t *testing.T) {
	keys := newKeys(t)
	register := func(s *grpc.Server) { orderv1.RegisterOrderServiceServer(s, &orderService{}) }
	missing := grpcserver.Policy{}
	for m, roles := range testPolicy {
		if m != orderv1.OrderService_CancelOrder_FullMethodName {
			missing[m] = roles
		}
	}
	typo := grpcserver.Policy{"/sagasuite.order.v1.OrderService/GetOrders": {auth.RoleService}}
	for m, roles := range testPolicy {
		typo[m] = roles
	}
	for name, tc := range map[string]struct {
		auth *grpcserver.Auth
		want string
	}{
		"missing method": {&grpcserver.Auth{Verifier: keys.v, Policy: missing}, "CancelOrder has no policy"},
		"unknown method": {&grpcserver.Auth{Verifier: keys.v, Policy: typo}, "GetOrders, which is not served"},
		"no verifier":    {&grpcserver.Auth{Policy: testPolicy}, "Verifier"},
	} {
		srv, err := grpcserver.New(grpcserver.Options{Addr: "127.0.0.1:0", Register: register, Auth: tc.auth})
		if err == nil {
			srv.Close()
			t.Errorf("%s: New started the server", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to say %q", name, err, tc.want)
		}
	}
	if err := grpcserver.CheckPolicy(testPolicy, &orderv1.OrderService_ServiceDesc); err != nil {
		t.Errorf("CheckPolicy(complete table): %v", err)
	}
	if err := grpcserver.CheckPolicy(grpcserver.Policy{orderv1.OrderService_GetOrder_FullMethodName: nil}, &orderv1.OrderService_ServiceDesc); err == nil ||
		!strings.Contains(err.Error(), "grants no role") {
		t.Errorf("CheckPolicy(empty role list): %v", err)
	}
}
