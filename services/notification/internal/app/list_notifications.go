package app

import (
	"context"
	"fmt"
)

// Page sizes of ListNotifications.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// ListNotifications asks for one page of a customer's notifications.
type ListNotifications struct {
	CustomerID string
	PageSize   int // 0: DefaultPageSize
	PageToken  string
}

// ListNotificationsHandler pages through a customer's notifications, newest first.
type ListNotificationsHandler struct {
	store Store
}

// Handle returns one page; the API layer has validated the request's shape,
// and these checks keep the use case safe for any other caller.
func (h ListNotificationsHandler) Handle(ctx context.Context, q ListNotifications) (NotificationPage, error) {
	if q.CustomerID == "" {
		return NotificationPage{}, &FieldError{Field: "customer_id", Problem: "is required"}
	}
	size := q.PageSize
	switch {
	case size == 0:
		size = DefaultPageSize
	case size < 0 || size > MaxPageSize:
		return NotificationPage{}, &FieldError{Field: "page_size", Problem: fmt.Sprintf("must be between 0 and %d", MaxPageSize)}
	}
	page, err := h.store.ListNotifications(ctx, q.CustomerID, size, q.PageToken)
	if err != nil {
		return NotificationPage{}, fmt.Errorf("list notifications of %s: %w", q.CustomerID, err)
	}
	return page, nil
}
