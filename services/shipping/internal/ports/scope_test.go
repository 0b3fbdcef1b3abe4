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
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/adapters"
	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/ports"
)

// wait bounds each call against the real store; no test asserts on timing.
const wait = 2 * time.Minute

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
	c := authtest.NewCallers(t, wait)
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
	if err := repo.EnsureIndexes(c.Internal); err != nil {
		t.Fatalf("EnsureIndexes (FerretDB at %s; run `make infra-up`): %v", testenv.MongoURI(), err)
	}
	a := app.New(repo, adapters.NewSimulatedCarrier(), ports.EncodeEvent, time.Now)
	srv := ports.NewGRPCServer(a)
	aliceOrder, bobOrder, missingOrder := shippedOrder(t, c.Internal, a, c.AliceID), shippedOrder(t, c.Internal, a, c.BobID), events.NewID()

	// GetShipment: bob's reads to alice like an order without a shipment.
	if got, err := srv.GetShipment(c.Alice, &shippingv1.GetShipmentRequest{OrderId: aliceOrder}); err != nil || got.GetShipment().GetCustomerId() != c.AliceID {
		t.Fatalf("alice gets her shipment: %v, %v", got, err)
	}
	_, foreign := srv.GetShipment(c.Alice, &shippingv1.GetShipmentRequest{OrderId: bobOrder})
	_, missing := srv.GetShipment(c.Alice, &shippingv1.GetShipmentRequest{OrderId: missingOrder})
	authtest.SameAnswer(t, "GetShipment", foreign, bobOrder, missing, missingOrder)
	for name, ctx := range map[string]context.Context{"bob": c.Bob, "operator": c.Operator, "in-process": c.Internal} {
		if got, err := srv.GetShipment(ctx, &shippingv1.GetShipmentRequest{OrderId: bobOrder}); err != nil || got.GetShipment().GetOrderId() != bobOrder {
			t.Fatalf("%s gets bob's shipment: %v, %v", name, got, err)
		}
	}

	// ListShipments: only one's own customer_id.
	list, err := srv.ListShipments(c.Alice, &shippingv1.ListShipmentsRequest{CustomerId: c.AliceID})
	if err != nil || len(list.GetShipments()) != 1 || list.GetShipments()[0].GetOrderId() != aliceOrder {
		t.Fatalf("alice lists her shipments: %v, %v", list, err)
	}
	_, err = srv.ListShipments(c.Alice, &shippingv1.ListShipmentsRequest{CustomerId: c.BobID})
	authtest.WantCode(t, "alice lists bob's shipments", err, codes.PermissionDenied)
	if list, err := srv.ListShipments(c.Alice, &shippingv1.ListShipmentsRequest{}); err != nil || len(list.GetShipments()) != 1 {
		t.Fatalf("alice lists without a customer_id (her own filled in): %v, %v", list, err)
	}
	if list, err := srv.ListShipments(c.Operator, &shippingv1.ListShipmentsRequest{CustomerId: c.BobID}); err != nil ||
		len(list.GetShipments()) != 1 || list.GetShipments()[0].GetOrderId() != bobOrder {
		t.Fatalf("an operator lists bob's shipments: %v, %v", list, err)
	}

	// A customer token without a subject owns nothing.
	nobody := auth.WithPrincipal(c.Internal, auth.Principal{Roles: []auth.Role{auth.RoleCustomer}})
	_, err = srv.GetShipment(nobody, &shippingv1.GetShipmentRequest{OrderId: bobOrder})
	authtest.WantCode(t, "GetShipment without a subject", err, codes.NotFound)
	_, err = srv.ListShipments(nobody, &shippingv1.ListShipmentsRequest{})
	authtest.WantCode(t, "ListShipments without a subject", err, codes.PermissionDenied)
}
