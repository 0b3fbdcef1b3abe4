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
		return nil, SagaLogNotFound(orderID)
	}
	return log, nil
}

// SagaLogNotFound is the error for an order with no log the caller may see.
// The query answers an order without events with it and the API another
// customer's order, so the two read the same and ids cannot be probed.
func SagaLogNotFound(orderID string) error {
	return fmt.Errorf("saga log of order %s: %w", orderID, ErrNotFound)
}
