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
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/adapters"
	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/ports"
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

// shippedOrder ships a new order of customerID the way the saga does (an
// INVENTORY_UPDATED through the event handler) and returns the order id.
func shippedOrder(t *testing.T, ctx context.Context, a app.Application, customerID string) string {
	t.Helper()
	orderID := events.NewID()
	env, err := events.New(events.Meta{OrderID: orderID, CustomerID: customerID, Producer: "inventory", CausationID: events.NewID(), OccurredAt: time.Now()},
		&eventsv1.InventoryUpdated{ReservationId: events.NewID(),
			Lines:           []*commonv1.LineItem{{Sku: "BOOK-1", Quantity: 1, UnitPriceMinor: 1250}},
			ShippingAddress: &commonv1.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ports.EventHandler(a)(ctx, env); err != nil {
		t.Fatalf("ship order %s: %v", orderID, err)
	}
	return orderID
}

func TestCustomerSeesOwnShipmentsOnly(t *testing.T) {
	c := newCallers(t)
	client, err := adapters.Connect(testenv.MongoURI())
	if err != nil {
		t.Fatalf("FerretDB at %s (run `make infra-up`): %v", testenv.MongoURI(), err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	db := client.Database(testenv.UniqueName("shipping_t_"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Errorf("drop database %s: %v", db.Name(), err)
		}
	})
	repo := adapters.NewShipmentMongoRepository(db, time.Now)
	if err := repo.EnsureIndexes(c.internal); err != nil {
		t.Fatalf("EnsureIndexes (FerretDB at %s; run `make infra-up`): %v", testenv.MongoURI(), err)
	}
	a := app.New(repo, adapters.NewSimulatedCarrier(), ports.EncodeEvent, time.Now)
	srv := ports.NewGRPCServer(a)
	aliceOrder, bobOrder, missingOrder := shippedOrder(t, c.internal, a, c.aliceID), shippedOrder(t, c.internal, a, c.bobID), events.NewID()

	// GetShipment: bob's reads to alice like an order without a shipment.
	if got, err := srv.GetShipment(c.alice, &shippingv1.GetShipmentRequest{OrderId: aliceOrder}); err != nil || got.GetShipment().GetCustomerId() != c.aliceID {
		t.Fatalf("alice gets her shipment: %v, %v", got, err)
	}
	_, foreign := srv.GetShipment(c.alice, &shippingv1.GetShipmentRequest{OrderId: bobOrder})
	_, missing := srv.GetShipment(c.alice, &shippingv1.GetShipmentRequest{OrderId: missingOrder})
	sameAnswer(t, "GetShipment", foreign, bobOrder, missing, missingOrder)
	for name, ctx := range map[string]context.Context{"bob": c.bob, "operator": c.operator, "in-process": c.internal} {
		if got, err := srv.GetShipment(ctx, &shippingv1.GetShipmentRequest{OrderId: bobOrder}); err != nil || got.GetShipment().GetOrderId() != bobOrder {
			t.Fatalf("%s gets bob's shipment: %v, %v", name, got, err)
		}
	}

	// ListShipments: only one's own customer_id.
	list, err := srv.ListShipments(c.alice, &shippingv1.ListShipmentsRequest{CustomerId: c.aliceID})
	if err != nil || len(list.GetShipments()) != 1 || list.GetShipments()[0].GetOrderId() != aliceOrder {
		t.Fatalf("alice lists her shipments: %v, %v", list, err)
	}
	_, err = srv.ListShipments(c.alice, &shippingv1.ListShipmentsRequest{CustomerId: c.bobID})
	wantCode(t, "alice lists bob's shipments", err, codes.PermissionDenied)
	if list, err := srv.ListShipments(c.alice, &shippingv1.ListShipmentsRequest{}); err != nil || len(list.GetShipments()) != 1 {
		t.Fatalf("alice lists without a customer_id (her own filled in): %v, %v", list, err)
	}
	if list, err := srv.ListShipments(c.operator, &shippingv1.ListShipmentsRequest{CustomerId: c.bobID}); err != nil ||
		len(list.GetShipments()) != 1 || list.GetShipments()[0].GetOrderId() != bobOrder {
		t.Fatalf("an operator lists bob's shipments: %v, %v", list, err)
	}

	// A customer token without a subject owns nothing.
	nobody := auth.WithPrincipal(c.internal, auth.Principal{Roles: []auth.Role{auth.RoleCustomer}})
	_, err = srv.GetShipment(nobody, &shippingv1.GetShipmentRequest{OrderId: bobOrder})
	wantCode(t, "GetShipment without a subject", err, codes.NotFound)
	_, err = srv.ListShipments(nobody, &shippingv1.ListShipmentsRequest{})
	wantCode(t, "ListShipments without a subject", err, codes.PermissionDenied)
}
