package app

import (
	"context"

	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// GetShipmentHandler returns one order's shipment.
type GetShipmentHandler struct{ repo Repository }

// Handle returns the shipment or shipment.ErrNotFound.
func (h GetShipmentHandler) Handle(ctx context.Context, orderID string) (*shipment.Shipment, error) {
	return h.repo.Get(ctx, orderID)
}
