package app

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// OverloadedError refuses a new order: the service's backlog of PENDING
// orders has reached its bound, so an order accepted now would likely wait
// past its deadline. The caller may retry after RetryAfter.
type OverloadedError struct {
	Pending, Limit int
	RetryAfter     time.Duration
}

func (e *OverloadedError) Error() string {
	return fmt.Sprintf("overloaded: %d orders pending, limit %d; retry after %s", e.Pending, e.Limit, e.RetryAfter)
}

// Backlog admits new orders while the orders not yet terminal stay under a
// bound. The count lives in memory, so admission costs no query: the store's
// count (Refresh, run every interval by the service), plus the orders this
// process committed since that count began, plus those it is creating right
// now. Orders that end lower it only at the next Refresh, so between
// refreshes the count errs high, never low; orders other replicas create
// are seen at the next Refresh too, so the bound is soft by at most one
// interval's worth of other replicas' orders.
type Backlog struct {
	limit      int
	retryAfter time.Duration
	count      func(ctx context.Context) (int, error)

	mu        sync.Mutex
	stored    int // the store's count at the last refresh
	committed int // orders this process has created, ever
	mark      int // committed when that count began: those are in stored
	inFlight  int // admitted, not yet committed or given up
}

// NewBacklog bounds the backlog at limit (≥ 1) orders; count reads the
// store's number of PENDING orders; retryAfter is the hint given with a
// refusal.
func NewBacklog(limit int, retryAfter time.Duration, count func(ctx context.Context) (int, error)) (*Backlog, error) {
	if limit < 1 {
		return nil, fmt.Errorf("backlog limit must be at least 1, got %d", limit)
	}
	if retryAfter <= 0 {
		return nil, fmt.Errorf("retry hint must be positive, got %s", retryAfter)
	}
	return &Backlog{limit: limit, retryAfter: retryAfter, count: count}, nil
}

// Pending is the current estimate of orders not yet terminal.
func (b *Backlog) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending()
}

func (b *Backlog) pending() int { return b.stored + b.committed - b.mark + b.inFlight }

// Limit is the bound.
func (b *Backlog) Limit() int { return b.limit }

// admit counts one more order in flight, or refuses it when the bound is
// reached; the caller then calls done once. Counting at admission, not after
// the commit, keeps a burst of concurrent calls from all passing the check.
func (b *Backlog) admit() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := b.pending(); n >= b.limit {
		return &OverloadedError{Pending: n, Limit: b.limit, RetryAfter: b.retryAfter}
	}
	b.inFlight++
	return nil
}

// done ends an admission: created tells whether a new order was committed
// (not a retried request, not a failure).
func (b *Backlog) done(created bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inFlight--
	if created {
		b.committed++
	}
}

// Refresh replaces the store's part of the estimate with a new count.
// Orders committed while the count runs may or may not be in it; they are
// kept on top, so the estimate errs high until the next refresh.
func (b *Backlog) Refresh(ctx context.Context) error {
	b.mu.Lock()
	before := b.committed
	b.mu.Unlock()
	n, err := b.count(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stored, b.mark = n, before
	return nil
}
