package ports_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/auth/authtest"
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
	srv, c := newServer(t), authtest.NewCallers(t, wait)
	missingID := events.NewID()

	// CreateOrder: for oneself only.
	created, err := srv.CreateOrder(c.Alice, createRequest(c.AliceID))
	if err != nil {
		t.Fatalf("alice orders for herself: %v", err)
	}
	aliceOrder := created.GetOrder().GetOrderId()
	_, err = srv.CreateOrder(c.Alice, createRequest(c.BobID))
	authtest.WantCode(t, "alice orders for bob", err, codes.PermissionDenied)
	created, err = srv.CreateOrder(c.Bob, createRequest(c.BobID))
	if err != nil {
		t.Fatalf("bob orders for himself: %v", err)
	}
	bobOrder := created.GetOrder().GetOrderId()
	if _, err := srv.CreateOrder(c.Operator, createRequest(c.BobID)); err != nil {
		t.Fatalf("an operator orders for bob: %v", err)
	}

	// GetOrder: bob's order reads to alice like one that does not exist.
	if got, err := srv.GetOrder(c.Alice, &orderv1.GetOrderRequest{OrderId: aliceOrder}); err != nil || got.GetOrder().GetCustomerId() != c.AliceID {
		t.Fatalf("alice gets her order: %v, %v", got, err)
	}
	_, foreign := srv.GetOrder(c.Alice, &orderv1.GetOrderRequest{OrderId: bobOrder})
	_, missing := srv.GetOrder(c.Alice, &orderv1.GetOrderRequest{OrderId: missingID})
	authtest.SameAnswer(t, "GetOrder", foreign, bobOrder, missing, missingID)
	for name, ctx := range map[string]context.Context{"operator": c.Operator, "in-process": c.Internal} {
		if _, err := srv.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: bobOrder}); err != nil {
			t.Fatalf("%s gets bob's order: %v", name, err)
		}
	}

	// ListOrders: only one's own customer_id.
	list, err := srv.ListOrders(c.Alice, &orderv1.ListOrdersRequest{CustomerId: c.AliceID})
	if err != nil || len(list.GetOrders()) != 1 || list.GetOrders()[0].GetOrderId() != aliceOrder {
		t.Fatalf("alice lists her orders: %v, %v", list, err)
	}
	_, err = srv.ListOrders(c.Alice, &orderv1.ListOrdersRequest{CustomerId: c.BobID})
	authtest.WantCode(t, "alice lists bob's orders", err, codes.PermissionDenied)
	if list, err := srv.ListOrders(c.Alice, &orderv1.ListOrdersRequest{}); err != nil || len(list.GetOrders()) != 1 {
		t.Fatalf("alice lists without a customer_id (her own filled in): %v, %v", list, err)
	}
	if list, err := srv.ListOrders(c.Operator, &orderv1.ListOrdersRequest{CustomerId: c.BobID}); err != nil || len(list.GetOrders()) != 2 {
		t.Fatalf("an operator lists bob's orders: %v, %v", list, err)
	}

	// WatchOrder: nothing of bob's order reaches alice.
	watchAs := func(ctx context.Context, orderID string) (*watchStream, error) {
		w := &watchStream{ctx: ctx}
		return w, srv.WatchOrder(&orderv1.WatchOrderRequest{OrderId: orderID}, w)
	}
	w, foreign := watchAs(c.Alice, bobOrder)
	if len(w.sent) != 0 {
		t.Fatalf("alice watching bob's order was sent %v", w.sent)
	}
	_, missing = watchAs(c.Alice, missingID)
	authtest.SameAnswer(t, "WatchOrder", foreign, bobOrder, missing, missingID)

	// CancelOrder: bob's order stays as it is.
	_, foreign = srv.CancelOrder(c.Alice, &orderv1.CancelOrderRequest{OrderId: bobOrder, Reason: "not mine"})
	_, missing = srv.CancelOrder(c.Alice, &orderv1.CancelOrderRequest{OrderId: missingID, Reason: "not mine"})
	authtest.SameAnswer(t, "CancelOrder", foreign, bobOrder, missing, missingID)
	got, err := srv.GetOrder(c.Bob, &orderv1.GetOrderRequest{OrderId: bobOrder})
	if err != nil || got.GetOrder().GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING || len(got.GetOrder().GetSteps()) != 1 {
		t.Fatalf("bob's order after alice's cancel: %v, %v; want PENDING, untouched", got, err)
	}
	if got, err := srv.CancelOrder(c.Alice, &orderv1.CancelOrderRequest{OrderId: aliceOrder}); err != nil ||
		got.GetOrder().GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Fatalf("alice cancels her order: %v, %v", got, err)
	}
	if got, err := srv.CancelOrder(c.Operator, &orderv1.CancelOrderRequest{OrderId: bobOrder}); err != nil ||
		got.GetOrder().GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Fatalf("an operator cancels bob's order: %v, %v", got, err)
	}

	// Watching a finished order of one's own: its one snapshot, then the end.
	if w, err := watchAs(c.Alice, aliceOrder); err != nil || len(w.sent) != 1 {
		t.Fatalf("alice watches her cancelled order: sent %d, %v", len(w.sent), err)
	}
	if w, err := watchAs(c.Operator, bobOrder); err != nil || len(w.sent) != 1 {
		t.Fatalf("an operator watches bob's cancelled order: sent %d, %v", len(w.sent), err)
	}
}

// A customer token without a subject owns nothing: it must not be taken
// for "any customer".
func TestCustomerWithoutSubjectReachesNothing(t *testing.T) {
	srv, c := newServer(t), authtest.NewCallers(t, wait)
	created, err := srv.CreateOrder(c.Bob, createRequest(c.BobID))
	if err != nil {
		t.Fatal(err)
	}
	bobOrder := created.GetOrder().GetOrderId()
	nobody := auth.WithPrincipal(c.Internal, auth.Principal{Roles: []auth.Role{auth.RoleCustomer}})
	_, err = srv.GetOrder(nobody, &orderv1.GetOrderRequest{OrderId: bobOrder})
	authtest.WantCode(t, "GetOrder", err, codes.NotFound)
	_, err = srv.CancelOrder(nobody, &orderv1.CancelOrderRequest{OrderId: bobOrder})
	authtest.WantCode(t, "CancelOrder", err, codes.NotFound)
	_, err = srv.ListOrders(nobody, &orderv1.ListOrdersRequest{})
	authtest.WantCode(t, "ListOrders", err, codes.PermissionDenied)
	_, err = srv.CreateOrder(nobody, createRequest(c.BobID))
	authtest.WantCode(t, "CreateOrder", err, codes.PermissionDenied)
}
