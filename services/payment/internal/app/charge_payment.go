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

// Handle records the charge intent (CHARGE_PENDING) unless the order has a
// payment record already — an intent, a decided charge, or the tombstone of
// an order cancelled first — exactly once per event id, then calls the
// gateway (idempotency key = order id) outside any transaction and records
// CAPTURED with PAYMENT_PROCESSED or FAILED with PAYMENT_FAILED. A call that
// does not resolve is left to the sweeper.
func (h ChargePaymentHandler) Handle(ctx context.Context, cmd ChargePayment) error {
	req := payment.ChargeRequest{
		OrderID: cmd.OrderID, PaymentID: PaymentIDFor(cmd.OrderID), CustomerID: cmd.CustomerID,
		Amount: cmd.Amount, PaymentToken: cmd.PaymentToken, CausationID: cmd.EventID,
	}
	took, err := h.deps.intent(ctx, cmd.OrderID, cmd.EventID, func(existing *payment.Payment, now time.Time) (*payment.Payment, error) {
		return payment.BeginCharge(existing, req, now)
	})
	if err == nil {
		err = h.deps.settleOrLeave(ctx, took)
	}
	if err != nil {
		return fmt.Errorf("charge order %s (event %s): %w", cmd.OrderID, cmd.EventID, err)
	}
	return nil
}
