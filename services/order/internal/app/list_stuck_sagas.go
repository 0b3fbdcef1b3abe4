package app

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// Defaults and bounds of ListStuckSagas.
const (
	DefaultStuckAfter     = 10 * time.Second
	DefaultStuckPageSize  = 20
	MaxStuckPageSize      = 100
	maxStuckOlderThan     = 7 * 24 * time.Hour
	minStuckOlderThan     = time.Second
	serviceInventory      = "inventory"
	servicePayment        = "payment"
	serviceShipping       = "shipping"
	eventStockReserved    = order.EventType("STOCK_RESERVED")
	eventPaymentProcessed = order.EventType("PAYMENT_PROCESSED")
	eventInventoryUpdated = order.EventType("INVENTORY_UPDATED")
)

// StuckSaga is a PENDING order without progress and what it waits for.
type StuckSaga struct {
	Order *order.Order
	// LastStep is the furthest forward step of the saga reached.
	LastStep order.EventType
	// WaitingFor is the event expected next, WaitingOn the service that
	// emits it.
	WaitingFor order.EventType
	WaitingOn  string
	// StalledFor is now minus the order's last change.
	StalledFor time.Duration
}

// forward is the happy path after ORDER_CREATED, in order, with the service
// that emits each step.
var forward = []struct {
	event   order.EventType
	service string
}{
	{eventStockReserved, serviceInventory},
	{eventPaymentProcessed, servicePayment},
	{eventInventoryUpdated, serviceInventory},
	{order.EventShipmentCreated, serviceShipping},
}

// WaitingStep derives where a PENDING saga stands from its steps: the
// furthest forward step recorded (so an event that arrived out of order does
// not move it back) and the one expected after it.
func WaitingStep(steps []order.Step) (last, next order.EventType, service string) {
	reached := -1
	for _, st := range steps {
		for i, f := range forward {
			if st.EventType == f.event && i > reached {
				reached = i
			}
		}
	}
	last = order.EventOrderCreated
	if reached >= 0 {
		last = forward[reached].event
	}
	if reached+1 < len(forward) {
		next, service = forward[reached+1].event, forward[reached+1].service
	}
	return last, next, service
}

// ListStuckSagasHandler lists the PENDING orders that stopped moving.
type ListStuckSagasHandler struct{ deps Deps }

// Handle returns up to pageSize (0: the default) PENDING orders whose last
// change is at least olderThan (0: DefaultStuckAfter) ago on the injected
// clock, least recently changed first, and whether more exist.
func (h ListStuckSagasHandler) Handle(ctx context.Context, olderThan time.Duration, pageSize int) ([]StuckSaga, bool, error) {
	if olderThan == 0 {
		olderThan = DefaultStuckAfter
	}
	if olderThan < minStuckOlderThan || olderThan > maxStuckOlderThan {
		return nil, false, order.Invalid("older_than", "must be between %s and %s, got %s", minStuckOlderThan, maxStuckOlderThan, olderThan)
	}
	if pageSize == 0 {
		pageSize = DefaultStuckPageSize
	}
	if pageSize < 0 || pageSize > MaxStuckPageSize {
		return nil, false, order.Invalid("page_size", "must be between 0 and %d, got %d", MaxStuckPageSize, pageSize)
	}
	now := h.deps.now()
	orders, err := h.deps.Repo.PendingIdleSince(ctx, now.Add(-olderThan), pageSize+1)
	if err != nil {
		return nil, false, err
	}
	truncated := len(orders) > pageSize
	if truncated {
		orders = orders[:pageSize]
	}
	out := make([]StuckSaga, len(orders))
	for i, o := range orders {
		last, next, service := WaitingStep(o.Steps)
		out[i] = StuckSaga{Order: o, LastStep: last, WaitingFor: next, WaitingOn: service, StalledFor: now.Sub(o.UpdatedAt)}
	}
	return out, truncated, nil
}

// StuckCounter keeps the number of PENDING orders without progress for
// stuckAfter, counted in the store every interval by the service (one
// index-only count), for the sagasuite.saga.stuck gauge to read without a
// query.
type StuckCounter struct {
	stuckAfter time.Duration
	now        func() time.Time
	count      func(ctx context.Context, since time.Time) (int, error)
	last       atomic.Int64
}

// NewStuckCounter counts with count on the clock now.
func NewStuckCounter(stuckAfter time.Duration, now func() time.Time, count func(ctx context.Context, since time.Time) (int, error)) *StuckCounter {
	return &StuckCounter{stuckAfter: stuckAfter, now: now, count: count}
}

// Refresh counts again; on error the last count stays.
func (c *StuckCounter) Refresh(ctx context.Context) error {
	n, err := c.count(ctx, c.now().UTC().Add(-c.stuckAfter))
	if err != nil {
		return err
	}
	c.last.Store(int64(n))
	return nil
}

// Stuck is the last count.
func (c *StuckCounter) Stuck() int64 { return c.last.Load() }
