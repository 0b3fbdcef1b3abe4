package app

import (
	"context"
	"time"

	"github.com/sagasuite/sagasuite/libs/paging"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// Page sizes of ListOrders.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// ListFilter selects the orders ListOrders pages through; zero fields do
// not filter. An empty CustomerID lists every customer's orders: the ports
// layer decides who may ask for that (auth.CustomerFilter).
type ListFilter struct {
	CustomerID string
	Status     order.Status
	// CancelReason implies Status CANCELLED.
	CancelReason order.CancelReason
	// CreatedFrom is inclusive, CreatedBefore exclusive.
	CreatedFrom, CreatedBefore time.Time
}

// Check refuses contradictory filters, naming the request field at fault.
func (f ListFilter) Check() error {
	if f.CancelReason != "" && f.Status != "" && f.Status != order.StatusCancelled {
		return order.Invalid("cancel_reason", "only CANCELLED orders have a cancel reason, but status %s was asked for", f.Status)
	}
	if !f.CreatedFrom.IsZero() && !f.CreatedBefore.IsZero() && !f.CreatedBefore.After(f.CreatedFrom) {
		return order.Invalid("created_before", "must be after created_after (%s), got %s",
			f.CreatedFrom.UTC().Format(time.RFC3339Nano), f.CreatedBefore.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// ListOrdersHandler pages through orders, newest first.
type ListOrdersHandler struct{ repo Repository }

// Handle returns one page and the token of the next ("" on the last page).
// The token is opaque to clients: a cursor (created_at, order id) encoded; it
// is a position only, so the client sends the same filter with it.
func (h ListOrdersHandler) Handle(ctx context.Context, filter ListFilter, pageSize int, pageToken string) ([]*order.Order, string, error) {
	size, err := paging.Size(pageSize, DefaultPageSize, MaxPageSize)
	if err != nil {
		return nil, "", order.Invalid("page_size", "%v", err)
	}
	after, err := paging.Decode(pageToken)
	if err != nil {
		return nil, "", order.Invalid("page_token", "%v", err)
	}
	if err := filter.Check(); err != nil {
		return nil, "", err
	}
	if filter.CancelReason != "" {
		filter.Status = order.StatusCancelled // lets the store use its status index
	}
	rows, err := h.repo.List(ctx, filter, after, size+1)
	if err != nil {
		return nil, "", err
	}
	page, next := paging.Cut(rows, size, func(x *order.Order) paging.Cursor {
		return paging.Cursor{CreatedAt: x.CreatedAt, ID: x.ID}
	})
	return page, next, nil
}
