package ports_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/adapters"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

// wait bounds each call against the real store; no test asserts on timing.
const wait = 2 * time.Minute

// callers are the contexts the interceptor would hand the handlers.
type callers struct {
	alice, bob, operator, internal context.Context
	aliceID, bobID                 string
}

func newCallers(t *testing.T) callers {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	c := callers{aliceID: events.NewID(), bobID: events.NewID(), internal: ctx}
	c.alice = auth.WithPrincipal(ctx, auth.Principal{Subject: c.aliceID, Roles: []auth.Role{auth.RoleCustomer}})
	c.bob = auth.WithPrincipal(ctx, auth.Principal{Subject: c.bobID, Roles: []auth.Role{auth.RoleCustomer}})
	c.operator = auth.WithPrincipal(ctx, auth.Principal{Subject: "ops", Roles: []auth.Role{auth.RoleOperator}})
	return c
}

// newServer is the order API over a fresh database on the shared MariaDB.
func newServer(t *testing.T) *ports.GRPCServer {
	t.Helper()
	db, _ := testenv.MySQLDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := adapters.Migrate(ctx, db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	watchers := app.NewWatchers()
	repo := adapters.NewOrderMySQLRepository(db, "order", time.Now)
	a := app.New(app.Deps{Repo: repo, Encode: ports.Encode, Now: time.Now, Changed: watchers.Publish}, time.Hour, watchers, nil)
	return ports.NewGRPCServer(a, slog.New(slog.DiscardHandler), nil)
}

func createRequest(customerID string) *orderv1.CreateOrderRequest {
	return &orderv1.CreateOrderRequest{
		CustomerId: customerID, RequestId: events.NewID(), Currency: "EUR", PaymentMethodToken: "tok_visa",
		Lines:           []*commonv1.LineItem{{Sku: "BOOK-1", Quantity: 1, UnitPriceMinor: 1250}},
		ShippingAddress: &commonv1.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"},
	}
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("%s: %v (code %s), want %s", what, err, got, want)
	}
}

// sameAnswer fails unless foreign (for an id that exists but is another
// customer's) is NotFound and, with each id masked, byte for byte the
// answer missing (for an id that does not exist) got: nothing tells them apart.
func sameAnswer(t *testing.T, what string, foreign error, foreignID string, missing error, missingID string) {
	t.Helper()
	wantCode(t, what+" (foreign)", foreign, codes.NotFound)
	mask := func(err error, id string) []byte {
		st := status.Convert(err).Proto()
		st.Message = strings.ReplaceAll(st.Message, id, "<id>")
		b, merr := proto.MarshalOptions{Deterministic: true}.Marshal(st)
		if merr != nil {
			t.Fatal(merr)
		}
		return b
	}
	if f, m := mask(foreign, foreignID), mask(missing, missingID); string(f) != string(m) {
		t.Fatalf("%s: a foreign id answers %q, a missing one %q", what, foreign, missing)
	}
}

// watchStream is the server side of a WatchOrder stream: it keeps what is sent.
type watchStream struct {
	grpc.ServerStream // not used beyond Context and Send
	ctx               context.Context
	sent              []*orderv1.WatchOrderResponse
}

func (w *watchStream) Context() context.Context { return w.ctx }
func (w *watchStream) Send(r *orderv1.WatchOrderResponse) error {
	w.sent = append(w.sent, r)
	return nil
}

func TestCustomerSeesAndActsOnOwnOrdersOnly(t *testing.T) {
	srv, c := newServer(t), newCallers(t)
	missingID := events.NewID()

	// CreateOrder: for oneself only.
	created, err := srv.CreateOrder(c.alice, createRequest(c.aliceID))
	if err != nil {
		t.Fatalf("alice orders for herself: %v", err)
	}
	aliceOrder := created.GetOrder().GetOrderId()
	_, err = srv.CreateOrder(c.alice, createRequest(c.bobID))
	wantCode(t, "alice orders for bob", err, codes.PermissionDenied)
	created, err = srv.CreateOrder(c.bob, createRequest(c.bobID))
	if err != nil {
		t.Fatalf("bob orders for himself: %v", err)
	}
	bobOrder := created.GetOrder().GetOrderId()
	if _, err := srv.CreateOrder(c.operator, createRequest(c.bobID)); err != nil {
		t.Fatalf("an operator orders for bob: %v", err)
	}

	// GetOrder: bob's order reads to alice like one that does not exist.
	if got, err := srv.GetOrder(c.alice, &orderv1.GetOrderRequest{OrderId: aliceOrder}); err != nil || got.GetOrder().GetCustomerId() != c.aliceID {
		t.Fatalf("alice gets her order: %v, %v", got, err)
	}
	_, foreign := srv.GetOrder(c.alice, &orderv1.GetOrderRequest{OrderId: bobOrder})
	_, missing := srv.GetOrder(c.alice, &orderv1.GetOrderRequest{OrderId: missingID})
	sameAnswer(t, "GetOrder", foreign, bobOrder, missing, missingID)
	for name, ctx := range map[string]context.Context{"operator": c.operator, "in-process": c.internal} {
		if _, err := srv.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: bobOrder}); err != nil {
			t.Fatalf("%s gets bob's order: %v", name, err)
		}
	}

	// ListOrders: only one's own customer_id.
	list, err := srv.ListOrders(c.alice, &orderv1.ListOrdersRequest{CustomerId: c.aliceID})
	if err != nil || len(list.GetOrders()) != 1 || list.GetOrders()[0].GetOrderId() != aliceOrder {
		t.Fatalf("alice lists her orders: %v, %v", list, err)
	}
	_, err = srv.ListOrders(c.alice, &orderv1.ListOrdersRequest{CustomerId: c.bobID})
	wantCode(t, "alice lists bob's orders", err, codes.PermissionDenied)
	if list, err := srv.ListOrders(c.alice, &orderv1.ListOrdersRequest{}); err != nil || len(list.GetOrders()) != 1 {
		t.Fatalf("alice lists without a customer_id (her own filled in): %v, %v", list, err)
	}
	if list, err := srv.ListOrders(c.operator, &orderv1.ListOrdersRequest{CustomerId: c.bobID}); err != nil || len(list.GetOrders()) != 2 {
		t.Fatalf("an operator lists bob's orders: %v, %v", list, err)
	}

	// WatchOrder: nothing of bob's order reaches alice.
	watchAs := func(ctx context.Context, orderID string) (*watchStream, error) {
		w := &watchStream{ctx: ctx}
		return w, srv.WatchOrder(&orderv1.WatchOrderRequest{OrderId: orderID}, w)
	}
	w, foreign := watchAs(c.alice, bobOrder)
	if len(w.sent) != 0 {
		t.Fatalf("alice watching bob's order was sent %v", w.sent)
	}
	_, missing = watchAs(c.alice, missingID)
	sameAnswer(t, "WatchOrder", foreign, bobOrder, missing, missingID)

	// CancelOrder: bob's order stays as it is.
	_, foreign = srv.CancelOrder(c.alice, &orderv1.CancelOrderRequest{OrderId: bobOrder, Reason: "not mine"})
	_, missing = srv.CancelOrder(c.alice, &orderv1.CancelOrderRequest{OrderId: missingID, Reason: "not mine"})
	sameAnswer(t, "CancelOrder", foreign, bobOrder, missing, missingID)
	got, err := srv.GetOrder(c.bob, &orderv1.GetOrderRequest{OrderId: bobOrder})
	if err != nil || got.GetOrder().GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING || len(got.GetOrder().GetSteps()) != 1 {
		t.Fatalf("bob's order after alice's cancel: %v, %v; want PENDING, untouched", got, err)
	}
	if got, err := srv.CancelOrder(c.alice, &orderv1.CancelOrderRequest{OrderId: aliceOrder}); err != nil ||
		got.GetOrder().GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Fatalf("alice cancels her order: %v, %v", got, err)
	}
	if got, err := srv.CancelOrder(c.operator, &orderv1.CancelOrderRequest{OrderId: bobOrder}); err != nil ||
		got.GetOrder().GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Fatalf("an operator cancels bob's order: %v, %v", got, err)
	}

	// Watching a finished order of one's own: its one snapshot, then the end.
	if w, err := watchAs(c.alice, aliceOrder); err != nil || len(w.sent) != 1 {
		t.Fatalf("alice watches her cancelled order: sent %d, %v", len(w.sent), err)
	}
	if w, err := watchAs(c.operator, bobOrder); err != nil || len(w.sent) != 1 {
		t.Fatalf("an operator watches bob's cancelled order: sent %d, %v", len(w.sent), err)
	}
}

// A customer token without a subject owns nothing: it must not be taken
// for "any customer".
func TestCustomerWithoutSubjectReachesNothing(t *testing.T) {
	srv, c := newServer(t), newCallers(t)
	created, err := srv.CreateOrder(c.bob, createRequest(c.bobID))
	if err != nil {
		t.Fatal(err)
	}
	bobOrder := created.GetOrder().GetOrderId()
	nobody := auth.WithPrincipal(c.internal, auth.Principal{Roles: []auth.Role{auth.RoleCustomer}})
	_, err = srv.GetOrder(nobody, &orderv1.GetOrderRequest{OrderId: bobOrder})
	wantCode(t, "GetOrder", err, codes.NotFound)
	_, err = srv.CancelOrder(nobody, &orderv1.CancelOrderRequest{OrderId: bobOrder})
	wantCode(t, "CancelOrder", err, codes.NotFound)
	_, err = srv.ListOrders(nobody, &orderv1.ListOrdersRequest{})
	wantCode(t, "ListOrders", err, codes.PermissionDenied)
	_, err = srv.CreateOrder(nobody, createRequest(c.bobID))
	wantCode(t, "CreateOrder", err, codes.PermissionDenied)
}
