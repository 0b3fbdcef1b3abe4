package ports_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
	"github.com/sagasuite/sagasuite/services/shipping/internal/ports"
)

var now = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// countingRepo records which orders the handler touched.
type countingRepo struct{ applied []string }

func (r *countingRepo) Apply(_ context.Context, orderID, _ string, decide func(*shipment.Shipment) (app.Change, error)) (bool, error) {
	if _, err := decide(nil); err != nil {
		return false, err
	}
	r.applied = append(r.applied, orderID)
	return true, nil
}
func (r *countingRepo) Get(context.Context, string) (*shipment.Shipment, error) { return nil, nil }
func (r *countingRepo) ListByCustomer(context.Context, string, int, string) ([]*shipment.Shipment, string, error) {
	return nil, "", nil
}

type acceptAll struct{}

func (acceptAll) Book(context.Context, app.BookingRequest) (shipment.Booking, error) {
	return shipment.Booking{Accepted: true, Carrier: "c", TrackingNumber: "t"}, nil
}

func (acceptAll) Cancel(context.Context, app.CancelRequest) error { return nil }

func TestEventHandlerRoutesAndClassifies(t *testing.T) {
	meta := events.Meta{OrderID: events.NewID(), CustomerID: events.NewID(), Producer: "inventory", CausationID: events.NewID(), OccurredAt: now}
	updated, err := events.New(meta, &eventsv1.InventoryUpdated{ReservationId: events.NewID(),
		Lines:           []*commonv1.LineItem{{Sku: "A1", Quantity: 1}},
		ShippingAddress: &commonv1.Address{Name: "A", Line1: "B", City: "C", CountryCode: "DE"}})
	if err != nil {
		t.Fatal(err)
	}
	processed, err := events.New(meta, &eventsv1.PaymentProcessed{PaymentId: events.NewID(), Amount: &commonv1.Money{AmountMinor: 1, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	newer, _ := events.New(meta, &eventsv1.InventoryUpdated{ReservationId: events.NewID(),
		Lines: updated.GetInventoryUpdated().GetLines(), ShippingAddress: updated.GetInventoryUpdated().GetShippingAddress()})
	newer.SchemaVersion = 2
	emptyLines, _ := events.New(meta, &eventsv1.InventoryUpdated{ReservationId: events.NewID(),
		Lines: updated.GetInventoryUpdated().GetLines(), ShippingAddress: updated.GetInventoryUpdated().GetShippingAddress()})
	emptyLines.GetInventoryUpdated().Lines = nil // past validation: the domain still refuses it

	repo := &countingRepo{}
	handle := ports.EventHandler(app.New(repo, acceptAll{}, ports.EncodeEvent, func() time.Time { return now }))
	ctx := context.Background()
	if err := handle(ctx, updated); err != nil || len(repo.applied) != 1 {
		t.Fatalf("INVENTORY_UPDATED: %v, applied %v", err, repo.applied)
	}
	if err := handle(ctx, processed); err != nil || len(repo.applied) != 1 {
		t.Fatalf("PAYMENT_PROCESSED must be acknowledged and ignored: %v, applied %v", err, repo.applied)
	}
	if err := handle(ctx, newer); !errors.Is(err, bus.ErrPermanent) {
		t.Fatalf("schema version 2: err = %v, want permanent", err)
	}
	if err := handle(ctx, emptyLines); !errors.Is(err, bus.ErrPermanent) || !errors.Is(err, shipment.ErrInvalid) {
		t.Fatalf("no lines: err = %v, want permanent ErrInvalid", err)
	}
}

func TestEncodeEventMapsFailureReasons(t *testing.T) {
	meta := events.Meta{OrderID: events.NewID(), CustomerID: events.NewID(), Producer: app.Producer, CausationID: events.NewID(), OccurredAt: now}
	for reason, want := range map[shipment.FailureReason]eventsv1.ShipmentFailureReason{
		shipment.ReasonUndeliverableAddress: eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_UNDELIVERABLE_ADDRESS,
		shipment.ReasonCarrierRejected:      eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_CARRIER_REJECTED,
		shipment.ReasonCarrierUnavailable:   eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_CARRIER_UNAVAILABLE,
	} {
		env, err := ports.EncodeEvent(meta, shipment.Failed{ShipmentID: shipment.IDFor(meta.OrderID), Reason: reason, Detail: "d"})
		if err != nil {
			t.Fatalf("%s: %v", reason, err)
		}
		if env.GetType() != eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED || env.GetShipmentFailed().GetReason() != want {
			t.Fatalf("%s: encoded %v", reason, env)
		}
	}
	if _, err := ports.EncodeEvent(meta, shipment.Failed{ShipmentID: shipment.IDFor(meta.OrderID)}); err == nil {
		t.Fatal("a failure without reason must not validate")
	}
}
