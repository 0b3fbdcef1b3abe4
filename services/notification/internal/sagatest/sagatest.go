// Package sagatest builds valid saga envelopes of every event type for tests.
package sagatest

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// Step is one event of a test saga.
type Step struct {
	Producer string
	Payload  proto.Message
}

// Refund is the amount PaymentRefunded carries in AllTypes.
var Refund = &commonv1.Money{AmountMinor: 4999, Currency: "EUR"}

// AllTypes is one event of every type, in a saga-like order: the happy path
// up to shipping, a failed shipment and its compensations, the rest after.
func AllTypes(t testing.TB) []Step {
	id := func(name string) string { return testenv.IDFor(t.Name() + "/" + name) }
	lines := []*commonv1.LineItem{{Sku: "SKU-1", Quantity: 2, UnitPriceMinor: 1250}, {Sku: "SKU-2", Quantity: 1, UnitPriceMinor: 2499}}
	total := &commonv1.Money{AmountMinor: 4999, Currency: "EUR"}
	address := &commonv1.Address{Name: "Ada Lovelace", Line1: "1 Analytical Way", City: "London", PostalCode: "N1", CountryCode: "GB"}
	return []Step{
		{"order", &eventsv1.OrderCreated{Lines: lines, Total: total, ShippingAddress: address, PaymentMethodToken: "tok_visa",
			Deadline: timestamppb.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}},
		{"inventory", &eventsv1.StockReserved{ReservationId: id("reservation"), Lines: lines, Total: total,
			PaymentMethodToken: "tok_visa", ShippingAddress: address}},
		{"payment", &eventsv1.PaymentProcessed{PaymentId: id("payment"), Amount: total}},
		{"inventory", &eventsv1.InventoryUpdated{ReservationId: id("reservation"), Lines: lines, ShippingAddress: address}},
		{"shipping", &eventsv1.ShipmentFailed{ShipmentId: id("shipment"),
			Reason: eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_UNDELIVERABLE_ADDRESS, Detail: "no carrier serves the destination"}},
		{"payment", &eventsv1.PaymentRefunded{PaymentId: id("payment"), RefundId: id("refund"), Amount: Refund,
			Reason: eventsv1.RefundReason_REFUND_REASON_SHIPMENT_FAILED}},
		{"inventory", &eventsv1.StockRestored{ReservationId: id("reservation"), Lines: lines,
			Reason: eventsv1.RestoreReason_RESTORE_REASON_SHIPMENT_FAILED, WasDeducted: true}},
		{"order", &eventsv1.OrderCancelled{Reason: eventsv1.CancelReason_CANCEL_REASON_SHIPMENT_FAILED, Detail: "no carrier serves the destination"}},
		// The remaining types, so every one is seen once.
		{"inventory", &eventsv1.OutOfStock{Sku: "SKU-3", Requested: 5, Available: 1, Reason: eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_INSUFFICIENT_STOCK}},
		{"payment", &eventsv1.PaymentFailed{Reason: eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_DECLINED, DeclineCode: "do_not_honor"}},
		{"shipping", &eventsv1.ShipmentCreated{ShipmentId: id("shipment-2"), Carrier: "dhl", TrackingNumber: "JD0001"}},
		{"order", &eventsv1.OrderCompleted{}},
		{"notification", &eventsv1.NotificationSent{NotificationId: id("notification"),
			Channel: eventsv1.NotificationChannel_NOTIFICATION_CHANNEL_EMAIL, Template: "order_completed"}},
		// Added last so the indexes above stay: a booked shipment cancelled with its carrier.
		{"shipping", &eventsv1.ShipmentCancelled{ShipmentId: id("shipment-2"), Carrier: "dhl", TrackingNumber: "JD0001"}},
	}
}

// Envelopes turns steps into envelopes for one order, one second apart from
// start, each caused by the one before (the first by a command id).
func Envelopes(t testing.TB, orderID, customerID string, start time.Time, steps []Step) []*eventsv1.Envelope {
	t.Helper()
	cause := testenv.IDFor(t.Name() + "/command/" + orderID)
	out := make([]*eventsv1.Envelope, 0, len(steps))
	for i, s := range steps {
		env, err := events.New(events.Meta{OrderID: orderID, CustomerID: customerID, Producer: s.Producer,
			CausationID: cause, OccurredAt: start.Add(time.Duration(i) * time.Second)}, s.Payload)
		if err != nil {
			t.Fatalf("build event %d (%T): %v", i, s.Payload, err)
		}
		out = append(out, env)
		cause = env.GetEventId()
	}
	return out
}
