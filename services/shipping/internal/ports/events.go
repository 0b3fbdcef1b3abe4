// Package ports translates the outside world's messages into use cases and
// back: saga envelopes into commands and domain events into envelopes
// (events.go), and the gRPC ShippingService (grpc.go).
package ports

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// EventHandler is the consumer group "shipping"'s handler (inventory.v1 and
// orders.v1): INVENTORY_UPDATED creates the shipment, ORDER_CANCELLED cancels
// it; every other event is acknowledged and ignored.
func EventHandler(a app.Application) bus.Handler {
	return func(ctx context.Context, env *eventsv1.Envelope) error {
		if env.GetSchemaVersion() > events.SchemaVersion {
			return bus.Permanent(fmt.Errorf("event %s has schema version %d; this service knows up to %d",
				env.GetEventId(), env.GetSchemaVersion(), events.SchemaVersion))
		}
		var err error
		switch env.GetType() {
		case eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED:
			p := env.GetInventoryUpdated()
			err = a.CreateShipment.Handle(ctx, app.CreateShipment{
				EventID: env.GetEventId(), OrderID: env.GetOrderId(), CustomerID: env.GetCustomerId(),
				Address: addressFromProto(p.GetShippingAddress()), Lines: linesFromProto(p.GetLines()),
			})
		case eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED:
			p := env.GetOrderCancelled()
			err = a.CancelShipment.Handle(ctx, app.CancelShipment{
				EventID: env.GetEventId(), OrderID: env.GetOrderId(), CustomerID: env.GetCustomerId(),
				Detail: cancelDetail(p),
			})
		default:
			return nil
		}
		if errors.Is(err, shipment.ErrInvalid) {
			return bus.Permanent(err)
		}
		return err
	}
}

// cancelDetail is the timeline text of a cancel: "CUSTOMER_REQUESTED: text".
func cancelDetail(p *eventsv1.OrderCancelled) string {
	reason := strings.TrimPrefix(p.GetReason().String(), "CANCEL_REASON_")
	if p.GetDetail() == "" {
		return reason
	}
	return reason + ": " + p.GetDetail()
}

// EncodeEvent builds the envelope of a domain event (implements app.EventEncoder).
func EncodeEvent(meta events.Meta, e shipment.Event) (*eventsv1.Envelope, error) {
	switch e := e.(type) {
	case shipment.Created:
		return events.New(meta, &eventsv1.ShipmentCreated{ShipmentId: e.ShipmentID, Carrier: e.Carrier, TrackingNumber: e.TrackingNumber})
	case shipment.Failed:
		return events.New(meta, &eventsv1.ShipmentFailed{ShipmentId: e.ShipmentID, Reason: failureReasonToProto(e.Reason), Detail: e.Detail})
	case shipment.Cancelled:
		// No cancel detail: it may hold the customer's own words, and the
		// order's history has the cancel already.
		return events.New(meta, &eventsv1.ShipmentCancelled{ShipmentId: e.ShipmentID, Carrier: e.Carrier, TrackingNumber: e.TrackingNumber})
	}
	return nil, fmt.Errorf("no envelope for domain event %T", e)
}

func failureReasonToProto(r shipment.FailureReason) eventsv1.ShipmentFailureReason {
	switch r {
	case shipment.ReasonUndeliverableAddress:
		return eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_UNDELIVERABLE_ADDRESS
	case shipment.ReasonCarrierRejected:
		return eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_CARRIER_REJECTED
	case shipment.ReasonCarrierUnavailable:
		return eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_CARRIER_UNAVAILABLE
	}
	return eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_UNSPECIFIED
}

func addressFromProto(a *commonv1.Address) shipment.Address {
	return shipment.Address{
		Name: a.GetName(), Line1: a.GetLine1(), Line2: a.GetLine2(), City: a.GetCity(),
		PostalCode: a.GetPostalCode(), CountryCode: a.GetCountryCode(),
	}
}

func linesFromProto(lines []*commonv1.LineItem) []shipment.Line {
	out := make([]shipment.Line, len(lines))
	for i, l := range lines {
		out[i] = shipment.Line{SKU: l.GetSku(), Quantity: int64(l.GetQuantity()), UnitPriceMinor: l.GetUnitPriceMinor()}
	}
	return out
}
