package app

import (
	"context"
	"fmt"
	"time"

	"github.com/sagasuite/sagasuite/services/inventory/internal/domain/stock"
)

// DeductStock answers PAYMENT_PROCESSED: a reservation becomes a deduction
// (INVENTORY_UPDATED).
func (s *Service) DeductStock(ctx context.Context, cause Cause) (bool, error) {
	return s.settle(ctx, "deduct stock", cause, (*stock.Reservation).PaymentProcessed)
}

// ReleaseStock answers PAYMENT_FAILED: a reservation is released (STOCK_RESTORED).
func (s *Service) ReleaseStock(ctx context.Context, cause Cause) (bool, error) {
	return s.settle(ctx, "release stock", cause, (*stock.Reservation).PaymentFailed)
}

// RestoreShippedStock answers SHIPMENT_FAILED: a deduction is reversed (STOCK_RESTORED).
func (s *Service) RestoreShippedStock(ctx context.Context, cause Cause) (bool, error) {
	return s.settle(ctx, "restore stock", cause, (*stock.Reservation).ShipmentFailed)
}

// CancelReservation answers ORDER_CANCELLED: whatever is held comes back
// (STOCK_RESTORED); with no reservation yet, a tombstone makes sure none is made later.
func (s *Service) CancelReservation(ctx context.Context, cause Cause) (bool, error) {
	cause.At = s.now()
	applied, err := s.repo.Apply(ctx, cause, nil, func(existing *stock.Reservation, catalog stock.Catalog) (*stock.Reservation, stock.Event, error) {
		if existing == nil {
			return stock.Tombstone(cause.OrderID, cause.CustomerID, cause.At), nil, nil
		}
		return step(existing, catalog, cause.At, (*stock.Reservation).Cancel)
	})
	if err != nil {
		return false, fmt.Errorf("cancel reservation of order %s: %w", cause.OrderID, err)
	}
	return applied, nil
}

type transition func(*stock.Reservation, stock.Catalog, time.Time) (stock.Event, error)

func (s *Service) settle(ctx context.Context, what string, cause Cause, t transition) (bool, error) {
	cause.At = s.now()
	applied, err := s.repo.Apply(ctx, cause, nil, func(existing *stock.Reservation, catalog stock.Catalog) (*stock.Reservation, stock.Event, error) {
		if existing == nil {
			return nil, nil, nil // nothing was ever reserved for this order
		}
		return step(existing, catalog, cause.At, t)
	})
	if err != nil {
		return false, fmt.Errorf("%s for order %s: %w", what, cause.OrderID, err)
	}
	return applied, nil
}

// step runs a transition and saves the reservation only when it moved.
func step(r *stock.Reservation, catalog stock.Catalog, now time.Time, t transition) (*stock.Reservation, stock.Event, error) {
	ev, err := t(r, catalog, now)
	if err != nil || ev == nil {
		return nil, nil, err
	}
	return r, ev, nil
}
