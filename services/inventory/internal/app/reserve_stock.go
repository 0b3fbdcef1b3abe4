package app

import (
	"context"
	"fmt"

	"github.com/sagasuite/sagasuite/services/inventory/internal/domain/stock"
)

// ReserveStock answers ORDER_CREATED: every line reserved (STOCK_RESERVED) or
// none (OUT_OF_STOCK); nothing at all when the order was decided or cancelled before.
func (s *Service) ReserveStock(ctx context.Context, cause Cause, order stock.Order) (applied bool, err error) {
	cause.At = s.now()
	order.OrderID, order.CustomerID = cause.OrderID, cause.CustomerID
	skus := make([]string, len(order.Lines))
	for i, line := range order.Lines {
		skus[i] = line.SKU
	}
	reservationID := ReservationID(cause.OrderID)
	applied, err = s.repo.Apply(ctx, cause, skus, func(existing *stock.Reservation, catalog stock.Catalog) (*stock.Reservation, stock.Event, error) {
		return stock.Reserve(existing, reservationID, order, catalog, cause.At)
	})
	if err != nil {
		return false, fmt.Errorf("reserve stock for order %s: %w", cause.OrderID, err)
	}
	return applied, nil
}
