package app

import (
	"context"
	"fmt"
	"time"

	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// CancelPayment is ORDER_CANCELLED as payment sees it.
type CancelPayment struct {
	EventID    string
	OrderID    string
	CustomerID string
}

// CancelPaymentHandler undoes payment's part of a cancelled order.
type CancelPaymentHandler struct{ deps Deps }

// Handle refunds a CAPTURED payment (REFUNDED + PAYMENT_REFUNDED caused by the
// cancel), or, when nothing was charged yet, stores a CANCELLED tombstone so a
// later STOCK_RESERVED charges nothing. Exactly once per event id; a second
// compensation (SHIPMENT_FAILED) finds REFUNDED and does nothing.
func (h CancelPaymentHandler) Handle(ctx context.Context, cmd CancelPayment) error {
	err := h.deps.apply(ctx, cmd.OrderID, cmd.EventID, func(existing *payment.Payment, now time.Time) (*payment.Payment, payment.Event, error) {
		return payment.Cancel(existing, cmd.OrderID, cmd.CustomerID, cmd.EventID, RefundIDFor(cmd.OrderID), h.deps.refund(ctx), now)
	})
	if err != nil {
		return fmt.Errorf("cancel payment of order %s (event %s): %w", cmd.OrderID, cmd.EventID, err)
	}
	return nil
}
