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

// Handle undoes payment's part of the order: a CAPTURED payment gets a
// refund intent (then the gateway call, then REFUNDED + PAYMENT_REFUNDED
// caused by the cancel); a charge still pending has the cancel noted, so its
// outcome — recorded by the replica holding it or by the sweeper — is
// refunded if it was captured; with nothing yet, a CANCELLED tombstone makes
// a later STOCK_RESERVED charge nothing. Exactly once per event id; a second
// compensation (SHIPMENT_FAILED) finds the refund pending or done.
func (h CancelPaymentHandler) Handle(ctx context.Context, cmd CancelPayment) error {
	took, err := h.deps.intent(ctx, cmd.OrderID, cmd.EventID, func(existing *payment.Payment, now time.Time) (*payment.Payment, error) {
		return payment.Cancel(existing, cmd.OrderID, cmd.CustomerID, cmd.EventID, RefundIDFor(cmd.OrderID), now)
	})
	if err == nil {
		err = h.deps.settleOrLeave(ctx, took)
	}
	if err != nil {
		return fmt.Errorf("cancel payment of order %s (event %s): %w", cmd.OrderID, cmd.EventID, err)
	}
	return nil
}
