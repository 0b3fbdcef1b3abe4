package app

import (
	"context"

	"github.com/sagasuite/sagasuite/libs/paging"
	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// Page sizes of ListPayments.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// ListPaymentsHandler pages through a customer's payments, newest first.
type ListPaymentsHandler struct{ repo Repository }

// Handle returns one page and the token of the next ("" on the last page).
// The token is opaque to clients: a cursor (created_at, order id) encoded.
func (h ListPaymentsHandler) Handle(ctx context.Context, customerID string, pageSize int, pageToken string) ([]*payment.Payment, string, error) {
	size, err := paging.Size(pageSize, DefaultPageSize, MaxPageSize)
	if err != nil {
		return nil, "", payment.Invalid("page_size", "%v", err)
	}
	after, err := paging.Decode(pageToken)
	if err != nil {
		return nil, "", payment.Invalid("page_token", "%v", err)
	}
	rows, err := h.repo.ListByCustomer(ctx, customerID, after, size+1)
	if err != nil {
		return nil, "", err
	}
	page, next := paging.Cut(rows, size, func(x *payment.Payment) paging.Cursor {
		return paging.Cursor{CreatedAt: x.CreatedAt, ID: x.OrderID}
	})
	return page, next, nil
}
