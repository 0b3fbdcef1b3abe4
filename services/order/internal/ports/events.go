// Package ports is the order service's edge: the gRPC API (grpc.go), the
// saga events it consumes and emits (events.go) and the deadline timer
// (deadline.go). Wire types and errors are translated here, once.
package ports

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// Producer is the name the service signs its envelopes with.
const Producer = "order"

// Encode builds the envelope of an event the order emits (app.Encoder). Its
// id derives from the causation id and the type, so a rerun emits the same id.
func Encode(o *order.Order, t order.EventType, causationID string, now time.Time) (*eventsv1.Envelope, error) {
	var payload proto.Message
	switch t {
	case order.EventOrderCreated:
		payload = &eventsv1.OrderCreated{
			Lines:              lineItems(o.Lines),
			Total:              &commonv1.Money{AmountMinor: o.TotalMinor, Currency: o.Currency},
			ShippingAddress:    address(o.ShippingAddress),
			PaymentMethodToken: o.PaymentToken,
			Deadline:           timestamppb.New(o.Deadline),
		}
	case order.EventOrderCancelled:
		payload = &eventsv1.OrderCancelled{Reason: cancelReason(o.CancelReason), Detail: o.CancelDetail}
	case order.EventOrderCompleted:
		payload = &eventsv1.OrderCompleted{}
	default:
		return nil, fmt.Errorf("the order service does not emit %s", t)
	}
	return events.New(events.Meta{
		OrderID: o.ID, CustomerID: o.CustomerID, Producer: Producer, CausationID: causationID, OccurredAt: now,
	}, payload)
}

// recorded are the event types the order consumes: all of them are outcomes
// or compensations of its saga and go into the step history.
var recorded = map[eventsv1.EventType]bool{
	eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED:    true,
	eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK:      true,
	eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED: true,
	eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED:    true,
	eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED: true,
	eventsv1.EventType_EVENT_TYPE_PAYMENT_FAILED:    true,
	eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED:  true,
	eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED:  true,
	eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED:   true,
	// A step after the cancel (the carrier was told); the order stays CANCELLED.
	eventsv1.EventType_EVENT_TYPE_SHIPMENT_CANCELLED: true,
}

// EventHandler is the handler of the "order" consumer group: each saga event
// becomes a step of its order and may end the order (app.RecordSagaEvent).
// Other types are acknowledged and ignored. An event for an order this store
// never had can only come from another suite or a bug: it is dead-lettered
// at once rather than retried.
func EventHandler(h app.RecordSagaEventHandler) bus.Handler {
	return func(ctx context.Context, env *eventsv1.Envelope) error {
		if !recorded[env.GetType()] {
			return nil
		}
		if env.GetSchemaVersion() > events.SchemaVersion {
			return bus.Permanent(fmt.Errorf("event %s has schema version %d, this service knows up to %d",
				env.GetEventId(), env.GetSchemaVersion(), events.SchemaVersion))
		}
		err := h.Handle(ctx, app.SagaEvent{
			OrderID:    env.GetOrderId(),
			EventID:    env.GetEventId(),
			Type:       order.EventType(events.TypeName(env.GetType())),
			OccurredAt: env.GetOccurredAt().AsTime().UTC().Truncate(time.Microsecond),
			Detail:     Describe(env),
		})
		if errors.Is(err, order.ErrNotFound) {
			return bus.Permanent(err)
		}
		return err
	}
}

// Describe is the step history's one-line summary of a saga event.
func Describe(env *eventsv1.Envelope) string {
	switch p := env.GetPayload().(type) {
	case *eventsv1.Envelope_StockReserved:
		return fmt.Sprintf("stock reserved: %d line(s), reservation %s", len(p.StockReserved.GetLines()), p.StockReserved.GetReservationId())
	case *eventsv1.Envelope_OutOfStock:
		s := p.OutOfStock
		return fmt.Sprintf("out of stock: %s requested %d, available %d (%s)", s.GetSku(), s.GetRequested(), s.GetAvailable(),
			enumName(s.GetReason().String(), "OUT_OF_STOCK_REASON_"))
	case *eventsv1.Envelope_InventoryUpdated:
		return fmt.Sprintf("stock deducted: %d line(s), reservation %s", len(p.InventoryUpdated.GetLines()), p.InventoryUpdated.GetReservationId())
	case *eventsv1.Envelope_StockRestored:
		s := p.StockRestored
		what := "reservation released"
		if s.GetWasDeducted() {
			what = "sold stock put back"
		}
		return fmt.Sprintf("stock restored (%s): %s, reservation %s", enumName(s.GetReason().String(), "RESTORE_REASON_"), what, s.GetReservationId())
	case *eventsv1.Envelope_PaymentProcessed:
		return fmt.Sprintf("payment captured: %s, payment %s", money(p.PaymentProcessed.GetAmount()), p.PaymentProcessed.GetPaymentId())
	case *eventsv1.Envelope_PaymentFailed:
		f := p.PaymentFailed
		return joinDetail("payment failed: "+enumName(f.GetReason().String(), "PAYMENT_FAILURE_REASON_"), f.GetDeclineCode(), f.GetDetail())
	case *eventsv1.Envelope_PaymentRefunded:
		r := p.PaymentRefunded
		return fmt.Sprintf("payment refunded (%s): %s, refund %s", enumName(r.GetReason().String(), "REFUND_REASON_"), money(r.GetAmount()), r.GetRefundId())
	case *eventsv1.Envelope_ShipmentCreated:
		s := p.ShipmentCreated
		return fmt.Sprintf("shipment booked with %s, tracking %s", s.GetCarrier(), s.GetTrackingNumber())
	case *eventsv1.Envelope_ShipmentFailed:
		f := p.ShipmentFailed
		return joinDetail("shipment failed: "+enumName(f.GetReason().String(), "SHIPMENT_FAILURE_REASON_"), f.GetDetail())
	case *eventsv1.Envelope_ShipmentCancelled:
		c := p.ShipmentCancelled
		return fmt.Sprintf("shipment cancelled with %s, tracking %s", c.GetCarrier(), c.GetTrackingNumber())
	}
	return events.TypeName(env.GetType())
}

func joinDetail(head string, parts ...string) string {
	for _, p := range parts {
		if p != "" {
			head += ": " + p
		}
	}
	return head
}

// enumName is "INSUFFICIENT_STOCK" → "insufficient stock".
func enumName(name, prefix string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, prefix), "_", " "))
}

func money(m *commonv1.Money) string {
	return fmt.Sprintf("%d %s (minor units)", m.GetAmountMinor(), m.GetCurrency())
}

const cancelReasonPrefix = "CANCEL_REASON_"

// cancelReason maps the domain's reason to the wire enum (same names).
func cancelReason(r order.CancelReason) eventsv1.CancelReason {
	return eventsv1.CancelReason(eventsv1.CancelReason_value[cancelReasonPrefix+string(r)])
}

func lineItems(lines []order.Line) []*commonv1.LineItem {
	out := make([]*commonv1.LineItem, len(lines))
	for i, l := range lines {
		out[i] = &commonv1.LineItem{Sku: l.SKU, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor}
	}
	return out
}

func address(a order.Address) *commonv1.Address {
	return &commonv1.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, CountryCode: a.CountryCode}
}
