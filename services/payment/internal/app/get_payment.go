package app

import (
	"context"

	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// GetPaymentHandler returns one order's payment.
type GetPaymentHandler struct{ repo Repository }

// Handle returns the order's payment with its refund, or payment.ErrNotFound
// when no charge was tried (including an order cancelled before any charge).
func (h GetPaymentHandler) Handle(ctx context.Context, orderID string) (*payment.Payment, error) {
	p, err := h.repo.Get(ctx, orderID)
	if err != nil {
		return nil, err
	}
	if !p.Visible() {
		return nil, payment.ErrNotFound
	}
	return p, nil
}
