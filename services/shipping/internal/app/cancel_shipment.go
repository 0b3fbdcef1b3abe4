package app

import (
	"context"
	"fmt"
	"time"

	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// CancelShipment is ORDER_CANCELLED: do nothing more for the order.
type CancelShipment struct {
	EventID    string
	OrderID    string
	CustomerID string
	Detail     string
}

// CancelShipmentHandler cancels a booked shipment (with its carrier) or
// leaves a tombstone.
type CancelShipmentHandler struct {
	repo    Repository
	carrier Carrier
	encode  EventEncoder
	now     func() time.Time
}

// Handle applies the command once per event id.
func (h CancelShipmentHandler) Handle(ctx context.Context, cmd CancelShipment) error {
	_, err := h.repo.Apply(ctx, cmd.OrderID, cmd.EventID, func(current *shipment.Shipment) (Change, error) {
		// The carrier is told first, under the order's lock: if it cannot
		// answer, nothing is stored and the event is retried.
		if shipment.NeedsCarrierCancel(current) {
			if err := h.carrier.Cancel(ctx, CancelRequest{
				OrderID: cmd.OrderID, Carrier: current.Carrier, TrackingNumber: current.TrackingNumber,
			}); err != nil {
				return Change{}, fmt.Errorf("cancel booking %s with %s: %w", current.TrackingNumber, current.Carrier, err)
			}
		}
		now := h.now()
		result, err := shipment.Cancel(current, cmd.OrderID, cmd.CustomerID, cmd.Detail, now)
		if err != nil {
			return Change{}, err
		}
		return changeOf(result, h.encode, cmd.EventID, now)
	})
	if err != nil {
		return fmt.Errorf("cancel shipment for order %s: %w", cmd.OrderID, err)
	}
	return nil
}
