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

// Handle gives a CAPTURED payment a refund intent and settles it (REFUNDED +
// PAYMENT_REFUNDED caused by the failure); on any other state it does
// nothing. Exactly once per event id; the ORDER_CANCELLED that follows finds
// the refund pending or done.
func (h RefundFailedShipmentHandler) Handle(ctx context.Context, cmd RefundFailedShipment) error {
	took, err := h.deps.intent(ctx, cmd.OrderID, cmd.EventID, func(existing *payment.Payment, now time.Time) (*payment.Payment, error) {
		return payment.ShipmentFailed(existing, cmd.EventID, RefundIDFor(cmd.OrderID), now)
	})
	if err == nil {
		err = h.deps.settleOrLeave(ctx, took)
	}
	if err != nil {
		return fmt.Errorf("refund failed shipment of order %s (event %s): %w", cmd.OrderID, cmd.EventID, err)
	}
	return nil
}
