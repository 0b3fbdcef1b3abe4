package app

import (
	"context"
	"fmt"
)

// GetSagaLogHandler returns every event recorded for an order, oldest first.
type GetSagaLogHandler struct {
	store Store
}

// Handle returns ErrNotFound when nothing is recorded for the order.
func (h GetSagaLogHandler) Handle(ctx context.Context, orderID string) ([]SagaEvent, error) {
	if orderID == "" {
		return nil, &FieldError{Field: "order_id", Problem: "is required"}
	}
	log, err := h.store.SagaLog(ctx, orderID)
	if err != nil {
		return nil, fmt.Errorf("saga log of %s: %w", orderID, err)
	}
	if len(log) == 0 {
		return nil, fmt.Errorf("saga log of order %s: %w", orderID, ErrNotFound)
	}
	return log, nil
}
