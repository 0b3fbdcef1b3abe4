package app

import (
	"context"

	"github.com/sagasuite/sagasuite/libs/paging"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// Page sizes of ListOrders.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// ListOrdersHandler pages through a customer's orders, newest first.
type ListOrdersHandler struct{ repo Repository }

// Handle returns one page and the token of the next ("" on the last page).
// The token is opaque to clients: a cursor (created_at, order id) encoded.
func (h ListOrdersHandler) Handle(ctx context.Context, customerID string, pageSize int, pageToken string) ([]*order.Order, string, error) {
	size, err := paging.Size(pageSize, DefaultPageSize, MaxPageSize)
	if err != nil {
		return nil, "", order.Invalid("page_size", "%v", err)
	}
	after, err := paging.Decode(pageToken)
	if err != nil {
		return nil, "", order.Invalid("page_token", "%v", err)
	}
	rows, err := h.repo.ListByCustomer(ctx, customerID, after, size+1)
	if err != nil {
		return nil, "", err
	}
	page, next := paging.Cut(rows, size, func(x *order.Order) paging.Cursor {
		return paging.Cursor{CreatedAt: x.CreatedAt, ID: x.ID}
	})
	return page, next, nil
}
