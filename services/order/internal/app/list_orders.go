package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"time"

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
	switch {
	case pageSize < 0 || pageSize > MaxPageSize:
		return nil, "", order.Invalid("page_size", "must be 0 to %d, got %d", MaxPageSize, pageSize)
	case pageSize == 0:
		pageSize = DefaultPageSize
	}
	var after *Cursor
	if pageToken != "" {
		c, err := decodePageToken(pageToken)
		if err != nil {
			return nil, "", err
		}
		after = &c
	}
	orders, err := h.repo.ListByCustomer(ctx, customerID, after, pageSize+1)
	if err != nil {
		return nil, "", err
	}
	if len(orders) <= pageSize {
		return orders, "", nil
	}
	orders = orders[:pageSize]
	last := orders[len(orders)-1]
	return orders, encodePageToken(Cursor{CreatedAt: last.CreatedAt, OrderID: last.ID}), nil
}

type pageToken struct {
	CreatedAtMicros int64  `json:"t"`
	OrderID         string `json:"id"`
}

func encodePageToken(c Cursor) string {
	b, _ := json.Marshal(pageToken{CreatedAtMicros: c.CreatedAt.UnixMicro(), OrderID: c.OrderID}) // cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePageToken(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	var t pageToken
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.OrderID == "" {
		return Cursor{}, order.Invalid("page_token", "is not a token this service returned")
	}
	return Cursor{CreatedAt: time.UnixMicro(t.CreatedAtMicros).UTC(), OrderID: t.OrderID}, nil
}
