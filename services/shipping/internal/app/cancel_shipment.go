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

// CancelShipmentHandler cancels a booked shipment or leaves a tombstone.
type CancelShipmentHandler struct {
	repo   Repository
	encode EventEncoder
	now    func() time.Time
}

// Handle applies the command once per event id.
func (h CancelShipmentHandler) Handle(ctx context.Context, cmd CancelShipment) error {
	_, err := h.repo.Apply(ctx, cmd.OrderID, cmd.EventID, func(current *shipment.Shipment) (Change, error) {
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
