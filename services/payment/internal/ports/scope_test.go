package ports_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/auth"
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

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("%s: %v (code %s), want %s", what, err, got, want)
	}
}

// sameAnswer fails unless foreign (for an id that exists but is another
// customer's) is NotFound and, with each id masked, byte for byte the
// answer missing (for an id that does not exist) got.
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
	c := newCallers(t)
	if err := adapters.Migrate(c.internal, db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	gateway, err := simgateway.New(0)
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(app.Deps{Repo: adapters.NewPaymentMySQLRepository(db, "payment", time.Now), Gateway: gateway, Encode: ports.Encode, Now: time.Now})
	srv := ports.NewGRPCServer(a)
	aliceOrder, bobOrder, missingOrder := paidOrder(t, c.internal, a, c.aliceID), paidOrder(t, c.internal, a, c.bobID), events.NewID()

	// GetPayment: bob's reads to alice like an order without a payment.
	if got, err := srv.GetPayment(c.alice, &paymentv1.GetPaymentRequest{OrderId: aliceOrder}); err != nil || got.GetPayment().GetCustomerId() != c.aliceID {
		t.Fatalf("alice gets her payment: %v, %v", got, err)
	}
	_, foreign := srv.GetPayment(c.alice, &paymentv1.GetPaymentRequest{OrderId: bobOrder})
	_, missing := srv.GetPayment(c.alice, &paymentv1.GetPaymentRequest{OrderId: missingOrder})
	sameAnswer(t, "GetPayment", foreign, bobOrder, missing, missingOrder)
	for name, ctx := range map[string]context.Context{"bob": c.bob, "operator": c.operator, "in-process": c.internal} {
		if got, err := srv.GetPayment(ctx, &paymentv1.GetPaymentRequest{OrderId: bobOrder}); err != nil || got.GetPayment().GetOrderId() != bobOrder {
			t.Fatalf("%s gets bob's payment: %v, %v", name, got, err)
		}
	}

	// ListPayments: only one's own customer_id.
	list, err := srv.ListPayments(c.alice, &paymentv1.ListPaymentsRequest{CustomerId: c.aliceID})
	if err != nil || len(list.GetPayments()) != 1 || list.GetPayments()[0].GetOrderId() != aliceOrder {
		t.Fatalf("alice lists her payments: %v, %v", list, err)
	}
	_, err = srv.ListPayments(c.alice, &paymentv1.ListPaymentsRequest{CustomerId: c.bobID})
	wantCode(t, "alice lists bob's payments", err, codes.PermissionDenied)
	if list, err := srv.ListPayments(c.alice, &paymentv1.ListPaymentsRequest{}); err != nil || len(list.GetPayments()) != 1 {
		t.Fatalf("alice lists without a customer_id (her own filled in): %v, %v", list, err)
	}
	if list, err := srv.ListPayments(c.operator, &paymentv1.ListPaymentsRequest{CustomerId: c.bobID}); err != nil ||
		len(list.GetPayments()) != 1 || list.GetPayments()[0].GetOrderId() != bobOrder {
		t.Fatalf("an operator lists bob's payments: %v, %v", list, err)
	}
	_, err = srv.ListPayments(c.operator, &paymentv1.ListPaymentsRequest{})
	wantCode(t, "an operator lists without a customer_id", err, codes.InvalidArgument)

	// A customer token without a subject owns nothing.
	nobody := auth.WithPrincipal(c.internal, auth.Principal{Roles: []auth.Role{auth.RoleCustomer}})
	_, err = srv.GetPayment(nobody, &paymentv1.GetPaymentRequest{OrderId: bobOrder})
	wantCode(t, "GetPayment without a subject", err, codes.NotFound)
	_, err = srv.ListPayments(nobody, &paymentv1.ListPaymentsRequest{})
	wantCode(t, "ListPayments without a subject", err, codes.PermissionDenied)
}
