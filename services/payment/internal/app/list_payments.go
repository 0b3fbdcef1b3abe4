package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"time"

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
	switch {
	case pageSize < 0 || pageSize > MaxPageSize:
		return nil, "", payment.Invalid("page_size", "must be 0 to %d, got %d", MaxPageSize, pageSize)
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
	payments, err := h.repo.ListByCustomer(ctx, customerID, after, pageSize+1)
	if err != nil {
		return nil, "", err
	}
	if len(payments) <= pageSize {
		return payments, "", nil
	}
	payments = payments[:pageSize]
	last := payments[len(payments)-1]
	return payments, encodePageToken(Cursor{CreatedAt: last.CreatedAt, OrderID: last.OrderID}), nil
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
		return Cursor{}, payment.Invalid("page_token", "is not a token this service returned")
	}
	return Cursor{CreatedAt: time.UnixMicro(t.CreatedAtMicros).UTC(), OrderID: t.OrderID}, nil
}
