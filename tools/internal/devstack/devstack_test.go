package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/tools/internal/audit"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

const free = "127.0.0.1:0"

// The dev stack starts on free ports with in-process servers only, runs an
// order to COMPLETED and an out-of-stock one to CANCELLED through the real
// gRPC API, passes the invariant audit, and after Stop leaves no goroutine
// and no listener behind.
func TestDevStackRunsSagasAndStopsClean(t *testing.T) {
	baseline := goleak.IgnoreCurrent()
	logs := &testenv.SyncBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("stack logs:\n%s", logs.String())
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	all := suite.Addrs{Order: free, Inventory: free, Payment: free, Shipping: free, Notification: free}
	stateFile := filepath.Join(t.TempDir(), "dev-stack.env")
	st, err := devstack.Start(ctx, devstack.Options{
		GRPC: all, Ops: all, KafkaAddr: free, MySQLAddr: free, MongoAddr: free, GatewayAddr: free, OrderDeadline: 10 * time.Minute,
		LogLevel: config.LevelWarn, LogOutput: logs, ReadyTimeout: 3 * time.Minute, StateFile: stateFile,
		Console: free,
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = st.Stop()
		}
	}()
	t.Logf("ready in %s", st.ReadyIn)
	if !st.Servers.KafkaInProcess || !st.Servers.MySQLInProcess || !st.Servers.MongoInProcess || !st.Servers.NotificationInMemory {
		t.Fatalf("want every server in-process, got %+v", st.Servers)
	}
	var banner bytes.Buffer
	st.PrintBanner(&banner)
	for _, want := range []string{st.GRPC.Order, st.Ops.Notification + "/readyz", "grpcurl -plaintext", "IN MEMORY", "DEV-MUG", stateFile} {
		if !strings.Contains(banner.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, banner.String())
		}
	}
	checkConsole(t, st, banner.String())
	calls := checkGRPCurlLines(ctx, t, st, banner.String())

	state, err := devstack.ReadStateFile(stateFile)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	if state.SigningKey != st.Keys.Files.PrivateJWK || state.CustomerToken != st.CustomerToken || state.OperatorToken != st.OperatorToken ||
		state.GRPC != st.GRPC || state.Ops != st.Ops || state.Issuer != suite.DevIssuer || state.Audience != suite.DevAudience ||
		state.Kafka != st.Servers.Kafka || state.Kafka == "" || state.TopicPrefix != st.Servers.TopicPrefix ||
		state.Web != st.Web || state.Web.Order == "" || state.ConsoleURL != st.ConsoleURL || state.ConsoleURL == "" {
		t.Errorf("state file %+v does not describe the stack (key %s, grpc %+v)", state, st.Keys.Files.PrivateJWK, st.GRPC)
	}

	conns, err := suite.Dial(st.GRPC, suite.WithToken(st.ToolToken("devstack-test")))
	if err != nil {
		t.Fatal(err)
	}
	// The printed CreateOrder line, sent as printed (body and customer
	// token) through gRPC: the order is placed for the demo customer.
	create := calls["sagasuite.order.v1.OrderService/CreateOrder"]
	var printedReq orderv1.CreateOrderRequest
	if err := protojson.Unmarshal([]byte(create.body), &printedReq); err != nil {
		t.Fatalf("printed CreateOrder body %q: %v", create.body, err)
	}
	customerConns, err := suite.Dial(st.GRPC, suite.WithToken(suite.StaticToken(create.token)))
	if err != nil {
		t.Fatal(err)
	}
	printed, err := customerConns.Order.CreateOrder(ctx, &printedReq)
	customerConns.Close()
	if err != nil {
		t.Fatalf("the printed CreateOrder: %v", err)
	}
	checkReflection(ctx, t, st.GRPC.Order, "sagasuite.order.v1.OrderService")
	customer := uuid.NewString()
	place := func(sku string, price int64) string {
		t.Helper()
		resp, err := conns.Order.CreateOrder(ctx, &orderv1.CreateOrderRequest{
			CustomerId: customer, Currency: devstack.Currency, PaymentMethodToken: "tok_visa", RequestId: uuid.NewString(),
			Lines: []*commonv1.LineItem{{Sku: sku, Quantity: 1, UnitPriceMinor: price}},
			ShippingAddress: &commonv1.Address{Name: "Ada Lovelace", Line1: "1 Analytical Street", City: "Berlin",
				PostalCode: "10115", CountryCode: "DE"},
		})
		if err != nil {
			t.Fatalf("CreateOrder %s: %v", sku, err)
		}
		return resp.GetOrder().GetOrderId()
	}
	completed := place("DEV-MUG", 1250)
	soldOut := place("DEV-POSTER", 1500)
	expect := func(id string, want orderv1.OrderStatus, reason eventsv1.CancelReason) {
		t.Helper()
		const bound = 3 * time.Minute // a saga that never ends, not a slow one
		deadline := time.Now().Add(bound)
		for {
			resp, err := conns.Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: id})
			o := resp.GetOrder()
			if err == nil && o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
				if o.GetStatus() != want || o.GetCancelReason() != reason {
					t.Fatalf("order %s ended %s (%s: %s), want %s (%s)", id, o.GetStatus(), o.GetCancelReason(), o.GetCancelDetail(), want, reason)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s not terminal within %s (status %s, last error %v)", id, bound, o.GetStatus(), err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	expect(completed, orderv1.OrderStatus_ORDER_STATUS_COMPLETED, eventsv1.CancelReason_CANCEL_REASON_UNSPECIFIED)
	expect(printed.GetOrder().GetOrderId(), orderv1.OrderStatus_ORDER_STATUS_COMPLETED, eventsv1.CancelReason_CANCEL_REASON_UNSPECIFIED)
	expect(soldOut, orderv1.OrderStatus_ORDER_STATUS_CANCELLED, eventsv1.CancelReason_CANCEL_REASON_OUT_OF_STOCK)
	checkWebGetOrder(ctx, t, st, create.token, printed.GetOrder().GetOrderId())

	auditCtx, auditCancel := context.WithTimeout(ctx, 3*time.Minute)
	rep, err := audit.Await(auditCtx, conns.Clients, audit.Scope{CustomerIDs: []string{customer}, GatewayURL: st.GatewayURL}, 100*time.Millisecond)
	auditCancel()
	if err != nil || !rep.OK() || rep.Orders != 2 || rep.GatewayAccounts != 2 {
		t.Fatalf("audit: %v; %d orders, violations %q", err, rep.Orders, rep.Violations)
	}
	conns.Close()

	// Every address the stack listened on.
	addrs := []string{st.Servers.Kafka, strings.TrimSuffix(strings.TrimPrefix(st.Servers.Mongo, "mongodb://"), "/"),
		strings.TrimPrefix(st.GatewayURL, "http://")}
	for _, dsn := range st.Servers.MySQL {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatalf("MySQL DSN %q: %v", dsn, err)
		}
		addrs = append(addrs, cfg.Addr)
	}
	for _, name := range suite.Services {
		addrs = append(addrs, st.GRPC.Of(name), st.Ops.Of(name), st.Web.Of(name))
	}
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			t.Fatalf("bad address %q of the stack: %v", a, err)
		}
	}

	stopStart := time.Now()
	stopped = true
	if err := st.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stopped in %s", time.Since(stopStart))
	if err := st.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(stateFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after Stop: %v, want it removed", err)
	}
	if _, err := os.Stat(st.Keys.Files.PrivateJWK); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("signing key after Stop: %v, want it removed", err)
	}

	for _, a := range addrs {
		if listening(a) {
			t.Errorf("%s still accepts connections after Stop", a)
		}
	}
	// goleak.Find retries for about a second; give it ten.
	var leaked error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if leaked = goleak.Find(baseline); leaked == nil || time.Now().After(deadline) {
			break
		}
	}
	if leaked != nil {
		t.Errorf("goroutines the stack started are still running 10s after Stop returned:\n%v", leaked)
	}
}

// checkReflection asserts the server at addr serves reflection (on in the
// dev stack, for grpcurl; off by default in the service binaries) and lists want.
func checkReflection(ctx context.Context, t *testing.T, addr, want string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	defer func() { _ = stream.CloseSend() }()
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatalf("reflection send: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection in the dev stack: %v", err)
	}
	for _, s := range resp.GetListServicesResponse().GetService() {
		if s.GetName() == want {
			return
		}
	}
	t.Errorf("reflection lists %v, not %s", resp.GetListServicesResponse().GetService(), want)
}

// listening reports whether something accepts TCP connections on addr (a
// connection to itself, possible on a closed ephemeral port, does not count).
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	return c.LocalAddr().String() != c.RemoteAddr().String()
}

// checkWebGetOrder reads the order as the console would: Connect JSON on
// order's browser listener, from the console's origin, with the customer's
// token; the banner lists that listener.
func checkWebGetOrder(ctx context.Context, t *testing.T, st *devstack.Stack, token, orderID string) {
	t.Helper()
	var banner bytes.Buffer
	st.PrintBanner(&banner)
	if !strings.Contains(banner.String(), "http://"+st.Web.Order) || !strings.Contains(banner.String(), devstack.DefaultWebOrigins[0]) {
		t.Errorf("banner lacks the web address %s or the allowed origin:\n%s", st.Web.Order, banner.String())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+st.Web.Order+"/sagasuite.order.v1.OrderService/GetOrder",
		strings.NewReader(`{"orderId":"`+orderID+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Origin", devstack.DefaultWebOrigins[0])
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("Connect GetOrder on %s: %v", st.Web.Order, err)
	}
	defer resp.Body.Close()
	var out struct {
		Order struct{ OrderID, Status string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Order.OrderID != orderID {
		t.Errorf("Connect GetOrder: status %d, %+v, %v", resp.StatusCode, out, err)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != devstack.DefaultWebOrigins[0] {
		t.Errorf("Allow-Origin %q, want the console's %s", got, devstack.DefaultWebOrigins[0])
	}
}
