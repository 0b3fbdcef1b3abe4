// Package ports translates between the wire (Kafka envelopes, gRPC) and the
// notification use cases, and maps their errors to gRPC codes in one place.
package ports

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
)

// EventHandler feeds every consumed saga event to the RecordEvent use case.
type EventHandler struct {
	record app.RecordEventHandler
}

// NewEventHandler returns the bus handler of the "notification" group.
func NewEventHandler(a app.Application) EventHandler {
	return EventHandler{record: a.Commands.RecordEvent}
}

// Handle records env. Events that can never be processed (an unknown schema
// version, a customer-facing event lacking what its message needs) are
// permanent failures: the bus dead-letters them instead of retrying.
func (h EventHandler) Handle(ctx context.Context, env *eventsv1.Envelope) error {
	cmd, err := RecordCommand(env)
	if err != nil {
		return bus.Permanent(err)
	}
	if err := h.record.Handle(ctx, cmd); err != nil {
		if errors.Is(err, notification.ErrInvalidEvent) {
			return bus.Permanent(err)
		}
		return err
	}
	return nil
}

// RecordCommand turns an envelope into the RecordEvent command; the envelope
// is kept in its deterministic wire encoding for the saga log.
func RecordCommand(env *eventsv1.Envelope) (app.RecordEvent, error) {
	if v := env.GetSchemaVersion(); v > events.SchemaVersion {
		return app.RecordEvent{}, fmt.Errorf("%w: envelope %s has schema version %d, this service knows up to %d",
			events.ErrInvalid, env.GetEventId(), v, events.SchemaVersion)
	}
	encoded, err := proto.MarshalOptions{Deterministic: true}.Marshal(env)
	if err != nil {
		return app.RecordEvent{}, fmt.Errorf("encode envelope %s: %w", env.GetEventId(), err)
	}
	e := notification.Event{
		ID:         env.GetEventId(),
		Type:       notification.EventType(events.TypeName(env.GetType())),
		OrderID:    env.GetOrderId(),
		CustomerID: env.GetCustomerId(),
		OccurredAt: env.GetOccurredAt().AsTime().UTC(),
	}
	switch p := env.GetPayload().(type) {
	case *eventsv1.Envelope_OrderCreated:
		e.OrderTotal = money(p.OrderCreated.GetTotal())
	case *eventsv1.Envelope_OrderCancelled:
		e.CancelReason = cancelReason(p.OrderCancelled.GetReason()) // the detail stays out: it may be a caller's free text
	case *eventsv1.Envelope_PaymentRefunded:
		e.RefundAmount = money(p.PaymentRefunded.GetAmount())
	}
	return app.RecordEvent{Event: e, Producer: env.GetProducer(), CausationID: env.GetCausationId(), Envelope: encoded}, nil
}

func money(m *commonv1.Money) notification.Money {
	return notification.Money{AmountMinor: m.GetAmountMinor(), Currency: m.GetCurrency()}
}

func cancelReason(r eventsv1.CancelReason) notification.CancelReason {
	switch r {
	case eventsv1.CancelReason_CANCEL_REASON_OUT_OF_STOCK:
		return notification.ReasonOutOfStock
	case eventsv1.CancelReason_CANCEL_REASON_PAYMENT_FAILED:
		return notification.ReasonPaymentFailed
	case eventsv1.CancelReason_CANCEL_REASON_SHIPMENT_FAILED:
		return notification.ReasonShipmentFailed
	case eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED:
		return notification.ReasonCustomerRequested
	case eventsv1.CancelReason_CANCEL_REASON_TIMEOUT:
		return notification.ReasonTimeout
	default:
		return notification.ReasonUnspecified
	}
}
