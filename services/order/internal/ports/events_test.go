package ports_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func pendingOrder(t *testing.T) *order.Order {
	t.Helper()
	o, err := order.New(order.Draft{
		ID: events.NewID(), CustomerID: events.NewID(),
		Lines:    []order.Line{{SKU: "BOOK-1", Quantity: 2, UnitPriceMinor: 1250}},
		Currency: "EUR", PaymentToken: "tok_visa",
		ShippingAddress: order.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", CountryCode: "DE"},
	}, t0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// Every cancel reason the domain can produce has a wire value, so no
// ORDER_CANCELLED fails validation; the id derives from cause and type.
func TestEncodeOrderCancelledForEveryReason(t *testing.T) {
	reasons := map[order.CancelReason]eventsv1.CancelReason{
		order.ReasonOutOfStock:        eventsv1.CancelReason_CANCEL_REASON_OUT_OF_STOCK,
		order.ReasonPaymentFailed:     eventsv1.CancelReason_CANCEL_REASON_PAYMENT_FAILED,
		order.ReasonShipmentFailed:    eventsv1.CancelReason_CANCEL_REASON_SHIPMENT_FAILED,
		order.ReasonCustomerRequested: eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED,
		order.ReasonTimeout:           eventsv1.CancelReason_CANCEL_REASON_TIMEOUT,
	}
	for reason, want := range reasons {
		o := pendingOrder(t)
		o.Status, o.CancelReason, o.CancelDetail = order.StatusCancelled, reason, "why"
		cause := events.NewID()
		env, err := ports.Encode(o, order.EventOrderCancelled, cause, t0)
		if err != nil {
			t.Fatalf("%s: %v", reason, err)
		}
		if got := env.GetOrderCancelled(); got.GetReason() != want || got.GetDetail() != "why" {
			t.Errorf("%s encoded as %v", reason, got)
		}
		if env.GetEventId() != events.DeriveID(cause, eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED) || env.GetProducer() != "order" {
			t.Errorf("%s: id %s producer %s", reason, env.GetEventId(), env.GetProducer())
		}
	}
}

func TestEncodeOrderCreatedCarriesWhatTheSagaNeeds(t *testing.T) {
	o := pendingOrder(t)
	env, err := ports.Encode(o, order.EventOrderCreated, events.NewID(), t0)
	if err != nil {
		t.Fatal(err)
	}
	c := env.GetOrderCreated()
	if c.GetTotal().GetAmountMinor() != 2500 || c.GetTotal().GetCurrency() != "EUR" || c.GetPaymentMethodToken() != "tok_visa" ||
		c.GetShippingAddress().GetCity() != "Berlin" || len(c.GetLines()) != 1 || !c.GetDeadline().AsTime().Equal(o.Deadline) {
		t.Errorf("ORDER_CREATED = %v", c)
	}
	if _, err := ports.Encode(o, "STOCK_RESERVED", events.NewID(), t0); err == nil {
		t.Error("encoded an event the order does not emit")
	}
}

func envelope(t *testing.T, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: events.NewID(), CustomerID: events.NewID(), Producer: "test",
		CausationID: events.NewID(), OccurredAt: t0}, payload)
	if err != nil {
		t.Fatalf("%T: %v", payload, err)
	}
	return env
}

func TestDescribeSummarizesEachConsumedEvent(t *testing.T) {
	money := &commonv1.Money{AmountMinor: 2500, Currency: "EUR"}
	lines := []*commonv1.LineItem{{Sku: "BOOK-1", Quantity: 2, UnitPriceMinor: 1250}}
	addr := &commonv1.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", CountryCode: "DE"}
	tests := []struct {
		payload proto.Message
		want    []string
	}{
		{&eventsv1.StockReserved{ReservationId: events.NewID(), Lines: lines, Total: money, PaymentMethodToken: "t", ShippingAddress: addr}, []string{"stock reserved", "1 line"}},
		{&eventsv1.OutOfStock{Sku: "BOOK-1", Requested: 2, Available: 1, Reason: eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_INSUFFICIENT_STOCK}, []string{"out of stock", "BOOK-1", "requested 2", "available 1", "insufficient stock"}},
		{&eventsv1.InventoryUpdated{ReservationId: events.NewID(), Lines: lines, ShippingAddress: addr}, []string{"stock deducted"}},
		{&eventsv1.StockRestored{ReservationId: events.NewID(), Lines: lines, Reason: eventsv1.RestoreReason_RESTORE_REASON_SHIPMENT_FAILED, WasDeducted: true}, []string{"stock restored", "shipment failed", "sold stock put back"}},
		{&eventsv1.PaymentProcessed{PaymentId: events.NewID(), Amount: money}, []string{"payment captured", "2500 EUR"}},
		{&eventsv1.PaymentFailed{Reason: eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_DECLINED, DeclineCode: "do_not_honor", Detail: "declined by issuer"}, []string{"payment failed", "declined", "do_not_honor", "declined by issuer"}},
		{&eventsv1.PaymentRefunded{PaymentId: events.NewID(), RefundId: events.NewID(), Amount: money, Reason: eventsv1.RefundReason_REFUND_REASON_ORDER_CANCELLED}, []string{"payment refunded", "order cancelled", "2500 EUR"}},
		{&eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "JD1"}, []string{"shipment booked", "dhl", "JD1"}},
		{&eventsv1.ShipmentFailed{ShipmentId: events.NewID(), Reason: eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_UNDELIVERABLE_ADDRESS, Detail: "no such street"}, []string{"shipment failed", "undeliverable address", "no such street"}},
		{&eventsv1.ShipmentCancelled{ShipmentId: events.NewID(), Carrier: "simpost", TrackingNumber: "SP000000000042"}, []string{"shipment cancelled", "simpost", "SP000000000042"}},
	}
	for _, tt := range tests {
		env := envelope(t, tt.payload)
		got := ports.Describe(env)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("Describe(%s) = %q, want it to mention %q", events.TypeName(env.GetType()), got, w)
			}
		}
	}
}

// An event for an order the store never had is dead-lettered at once; types
// the order does not consume are acknowledged without touching the store.
func TestEventHandlerDecisions(t *testing.T) {
	repo := &notFoundRepo{}
	h := ports.EventHandler(app.New(app.Deps{Repo: repo, Encode: ports.Encode, Now: func() time.Time { return t0 }},
		time.Minute, app.NewWatchers(), nil).RecordSagaEvent)

	err := h(context.Background(), envelope(t, &eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "X"}))
	if !errors.Is(err, bus.ErrPermanent) || !errors.Is(err, order.ErrNotFound) {
		t.Errorf("unknown order: %v, want a permanent ErrNotFound", err)
	}
	repo.calls = 0
	if err := h(context.Background(), envelope(t, &eventsv1.OrderCompleted{})); err != nil || repo.calls != 0 {
		t.Errorf("ORDER_COMPLETED: %v with %d store calls, want ignored", err, repo.calls)
	}
	future := envelope(t, &eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "X"})
	future.SchemaVersion = events.SchemaVersion + 1
	if err := h(context.Background(), future); !errors.Is(err, bus.ErrPermanent) || repo.calls != 0 {
		t.Errorf("unknown schema version: %v, want permanent without store calls", err)
	}
}

type notFoundRepo struct {
	app.Repository
	calls int
}

func (r *notFoundRepo) Update(context.Context, string, string, app.ChangeFunc) (*order.Order, bool, error) {
	r.calls++
	return nil, false, order.ErrNotFound
}
