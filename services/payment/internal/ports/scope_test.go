package ports_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/auth/authtest"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	"github.com/sagasuite/sagasuite/services/payment/internal/adapters"
	"github.com/sagasuite/sagasuite/services/payment/internal/adapters/simgateway"
	"github.com/sagasuite/sagasuite/services/payment/internal/app"
	"github.com/sagasuite/sagasuite/services/payment/internal/ports"
)

// wait bounds each call against the real store; no test asserts on timing.
const wait = 2 * time.Minute

// paidOrder charges a new order of customerID the way the saga does (a
// STOCK_RESERVED through the event handler) and returns the order id.
func paidOrder(t *testing.T, ctx context.Context, a app.Application, customerID string) string {
	t.Helper()
	orderID := events.NewID()
	env, err := events.New(events.Meta{OrderID: orderID, CustomerID: customerID, Producer: "inventory", CausationID: events.NewID(), OccurredAt: time.Now()},
		&eventsv1.StockReserved{ReservationId: events.NewID(), PaymentMethodToken: "tok_visa",
			Lines:           []*commonv1.LineItem{{Sku: "BOOK-1", Quantity: 1, UnitPriceMinor: 1250}},
			Total:           &commonv1.Money{AmountMinor: 1250, Currency: "EUR"},
			ShippingAddress: &commonv1.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ports.EventHandler(a)(ctx, env); err != nil {
		t.Fatalf("charge order %s: %v", orderID, err)
	}
	return orderID
}

func TestCustomerSeesOwnPaymentsOnly(t *testing.T) {
	db, _ := testenv.MySQLDatabase(t)
	c := authtest.NewCallers(t, wait)
	if err := adapters.Migrate(c.Internal, db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	gateway, err := simgateway.New(0)
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(app.Deps{Repo: adapters.NewPaymentMySQLRepository(db, "payment", time.Now), Gateway: gateway, Encode: ports.Encode, Now: time.Now})
	srv := ports.NewGRPCServer(a)
	aliceOrder, bobOrder, missingOrder := paidOrder(t, c.Internal, a, c.AliceID), paidOrder(t, c.Internal, a, c.BobID), events.NewID()

	// GetPayment: bob's reads to alice like an order without a payment.
	if got, err := srv.GetPayment(c.Alice, &paymentv1.GetPaymentRequest{OrderId: aliceOrder}); err != nil || got.GetPayment().GetCustomerId() != c.AliceID {
		t.Fatalf("alice gets her payment: %v, %v", got, err)
	}
	_, foreign := srv.GetPayment(c.Alice, &paymentv1.GetPaymentRequest{OrderId: bobOrder})
	_, missing := srv.GetPayment(c.Alice, &paymentv1.GetPaymentRequest{OrderId: missingOrder})
	authtest.SameAnswer(t, "GetPayment", foreign, bobOrder, missing, missingOrder)
	for name, ctx := range map[string]context.Context{"bob": c.Bob, "operator": c.Operator, "in-process": c.Internal} {
		if got, err := srv.GetPayment(ctx, &paymentv1.GetPaymentRequest{OrderId: bobOrder}); err != nil || got.GetPayment().GetOrderId() != bobOrder {
			t.Fatalf("%s gets bob's payment: %v, %v", name, got, err)
		}
	}

	// ListPayments: only one's own customer_id.
	list, err := srv.ListPayments(c.Alice, &paymentv1.ListPaymentsRequest{CustomerId: c.AliceID})
	if err != nil || len(list.GetPayments()) != 1 || list.GetPayments()[0].GetOrderId() != aliceOrder {
		t.Fatalf("alice lists her payments: %v, %v", list, err)
	}
	_, err = srv.ListPayments(c.Alice, &paymentv1.ListPaymentsRequest{CustomerId: c.BobID})
	authtest.WantCode(t, "alice lists bob's payments", err, codes.PermissionDenied)
	if list, err := srv.ListPayments(c.Alice, &paymentv1.ListPaymentsRequest{}); err != nil || len(list.GetPayments()) != 1 {
		t.Fatalf("alice lists without a customer_id (her own filled in): %v, %v", list, err)
	}
	if list, err := srv.ListPayments(c.Operator, &paymentv1.ListPaymentsRequest{CustomerId: c.BobID}); err != nil ||
		len(list.GetPayments()) != 1 || list.GetPayments()[0].GetOrderId() != bobOrder {
		t.Fatalf("an operator lists bob's payments: %v, %v", list, err)
	}
	_, err = srv.ListPayments(c.Operator, &paymentv1.ListPaymentsRequest{})
	authtest.WantCode(t, "an operator lists without a customer_id", err, codes.InvalidArgument)

	// A customer token without a subject owns nothing.
	nobody := auth.WithPrincipal(c.Internal, auth.Principal{Roles: []auth.Role{auth.RoleCustomer}})
	_, err = srv.GetPayment(nobody, &paymentv1.GetPaymentRequest{OrderId: bobOrder})
	authtest.WantCode(t, "GetPayment without a subject", err, codes.NotFound)
	_, err = srv.ListPayments(nobody, &paymentv1.ListPaymentsRequest{})
	authtest.WantCode(t, "ListPayments without a subject", err, codes.PermissionDenied)
}
