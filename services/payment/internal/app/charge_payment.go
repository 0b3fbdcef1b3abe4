package app

import (
	"context"
	"fmt"
	"time"

	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// ChargePayment is STOCK_RESERVED as payment sees it.
type ChargePayment struct {
	EventID      string
	OrderID      string
	CustomerID   string
	Amount       payment.Money
	PaymentToken string
}

// ChargePaymentHandler charges an order's reserved total.
type ChargePaymentHandler struct{ deps Deps }

// Handle charges the order through the gateway (idempotency key = order id)
// unless the order has a payment record already — a decided charge, or the
// tombstone of an order cancelled first — and stores CAPTURED with
// PAYMENT_PROCESSED or FAILED with PAYMENT_FAILED, exactly once per event id.
func (h ChargePaymentHandler) Handle(ctx context.Context, cmd ChargePayment) error {
	req := payment.ChargeRequest{
		OrderID: cmd.OrderID, PaymentID: PaymentIDFor(cmd.OrderID), CustomerID: cmd.CustomerID,
		Amount: cmd.Amount, PaymentToken: cmd.PaymentToken, CausationID: cmd.EventID,
	}
	charge := func(r payment.ChargeRequest) (string, error) {
		return h.deps.Gateway.Charge(ctx, r.OrderID, r.Amount, r.PaymentToken)
	}
	err := h.deps.apply(ctx, cmd.OrderID, cmd.EventID, func(existing *payment.Payment, now time.Time) (*payment.Payment, payment.Event, error) {
		return payment.Charge(existing, req, charge, now)
	})
	if err != nil {
		return fmt.Errorf("charge order %s (event %s): %w", cmd.OrderID, cmd.EventID, err)
	}
	return nil
}
