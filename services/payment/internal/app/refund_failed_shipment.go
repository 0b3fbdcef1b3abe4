package app

import (
	"context"
	"fmt"
	"time"

	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// RefundFailedShipment is SHIPMENT_FAILED as payment sees it.
type RefundFailedShipment struct {
	EventID string
	OrderID string
}

// RefundFailedShipmentHandler pays back an order that could not be shipped.
type RefundFailedShipmentHandler struct{ deps Deps }

// Handle refunds a CAPTURED payment (REFUNDED + PAYMENT_REFUNDED caused by the
// failure); on any other state it does nothing. Exactly once per event id; the
// ORDER_CANCELLED that follows finds REFUNDED and does nothing.
func (h RefundFailedShipmentHandler) Handle(ctx context.Context, cmd RefundFailedShipment) error {
	err := h.deps.apply(ctx, cmd.OrderID, cmd.EventID, func(existing *payment.Payment, now time.Time) (*payment.Payment, payment.Event, error) {
		return payment.ShipmentFailed(existing, cmd.EventID, RefundIDFor(cmd.OrderID), h.deps.refund(ctx), now)
	})
	if err != nil {
		return fmt.Errorf("refund failed shipment of order %s (event %s): %w", cmd.OrderID, cmd.EventID, err)
	}
	return nil
}
