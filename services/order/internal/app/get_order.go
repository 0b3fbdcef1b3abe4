package app

import (
	"context"

	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// GetOrderHandler reads one order with its step history.
type GetOrderHandler struct{ repo Repository }

// Handle returns the order or order.ErrNotFound.
func (h GetOrderHandler) Handle(ctx context.Context, orderID string) (*order.Order, error) {
	return h.repo.Get(ctx, orderID)
}
