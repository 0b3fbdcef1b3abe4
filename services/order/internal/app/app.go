// Package app holds the order service's use cases, one per file: the commands
// CreateOrder, CancelOrder, RecordSagaEvent and ExpireOrders, and the queries
// GetOrder, ListOrders, WatchOrder and ListStuckSagas. Each takes its
// dependencies as interfaces; all construction happens in the service's Run.
package app

import (
	"context"
	"fmt"
	"time"

	"github.com/sagasuite/sagasuite/libs/paging"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// Repository stores orders together with the events their changes cause
// (outbox) and the saga events already applied (inbox), each change in one
// transaction with the order's row locked.
type Repository interface {
	// Create stores a new order and its events. When an order with o.ID
	// exists already nothing is written: the stored order comes back with
	// created == false.
	Create(ctx context.Context, o *order.Order, events []*eventsv1.Envelope) (stored *order.Order, created bool, err error)
	// Update loads the order FOR UPDATE, runs change on it, and stores what
	// change did (status, new steps) with the events it returns. With a
	// non-empty inboxEventID the event is claimed first; when it was applied
	// before, change does not run and applied is false. An unknown id gives
	// order.ErrNotFound.
	Update(ctx context.Context, id, inboxEventID string, change ChangeFunc) (o *order.Order, applied bool, err error)
	// Get returns the order with its steps, or order.ErrNotFound.
	Get(ctx context.Context, id string) (*order.Order, error)
	// VersionsOf maps each of ids that exists to its stored version (it
	// grows with every stored change): the watch poller's one query.
	VersionsOf(ctx context.Context, ids []string) (map[string]int64, error)
	// List returns up to limit orders matching filter (an empty CustomerID:
	// every customer's), newest first, starting after the cursor (nil: from
	// the newest).
	List(ctx context.Context, filter ListFilter, after *Cursor, limit int) ([]*order.Order, error)
	// PendingPastDeadline returns ids of PENDING orders whose deadline is not
	// after now, oldest deadline first.
	PendingPastDeadline(ctx context.Context, now time.Time, limit int) ([]string, error)
	// UpdatePastDeadline locks up to limit PENDING orders whose deadline is
	// not after now (oldest first), runs change on each and stores the
	// changed ones with their events, all in one transaction. found is how
	// many it locked; an order whose change failed stays as it was and its
	// error is returned beside the committed rest.
	UpdatePastDeadline(ctx context.Context, now time.Time, limit int, change ChangeFunc) (changed []*order.Order, found int, err error)
	// PendingIdleSince returns up to limit PENDING orders, with their steps,
	// whose last change is not after since, least recently changed first.
	PendingIdleSince(ctx context.Context, since time.Time, limit int) ([]*order.Order, error)
	// CountPendingIdleSince counts the PENDING orders whose last change is
	// not after since.
	CountPendingIdleSince(ctx context.Context, since time.Time) (int, error)
	// CountPending counts the orders not yet terminal.
	CountPending(ctx context.Context) (int, error)
	// RequestOf is the customer of order id and the fingerprint of the
	// request that created it (nil for none), found false when there is no
	// such order: one primary-key read, for the refusal path to stay cheap.
	RequestOf(ctx context.Context, id string) (customerID string, requestHash []byte, found bool, err error)
}

// ChangeFunc changes a locked order and returns the events to store with it.
type ChangeFunc func(o *order.Order) ([]*eventsv1.Envelope, error)

// Cursor is a position in a list of orders, newest first.
type Cursor = paging.Cursor

// Encoder builds the envelope of an event the order emits (ports/events.go).
type Encoder func(o *order.Order, t order.EventType, causationID string, now time.Time) (*eventsv1.Envelope, error)

// Deps are what the use cases share.
type Deps struct {
	Repo   Repository
	Encode Encoder
	// Now is the injected clock.
	Now func() time.Time
	// Changed is told after each committed change of an order, with the
	// order as committed (it hands the snapshot to the order's watchers).
	// It must not block.
	Changed func(o *order.Order)
	// Emitted is told after a commit that wrote outbox rows (it wakes the
	// relay; a change that emits nothing leaves the relay asleep). It must
	// not block. Nil: nobody is told.
	Emitted func()
	// Ended is told once per order, by the replica whose transaction made
	// it COMPLETED or CANCELLED, after that commit (the saga-duration
	// metric). It must not block. Nil: nobody is told.
	Ended func(ctx context.Context, o *order.Order)
}

// now is the clock cut to what the store keeps (microseconds), so an order
// read back equals the one returned.
func (d Deps) now() time.Time { return d.Now().UTC().Truncate(time.Microsecond) }

func (d Deps) changed(o *order.Order) {
	if d.Changed != nil {
		d.Changed(o)
	}
}

func (d Deps) emitted() {
	if d.Emitted != nil {
		d.Emitted()
	}
}

func (d Deps) ended(ctx context.Context, o *order.Order) {
	if d.Ended != nil {
		d.Ended(ctx, o)
	}
}

// endsSaga reports whether a transition's events make the order terminal:
// an order emits ORDER_COMPLETED or ORDER_CANCELLED once, in the change
// that ends it.
func endsSaga(types []order.EventType) bool {
	for _, t := range types {
		if t == order.EventOrderCompleted || t == order.EventOrderCancelled {
			return true
		}
	}
	return false
}

// emit turns the event types a transition returned into envelopes caused by
// causationID and records each in the order's step history.
func (d Deps) emit(o *order.Order, types []order.EventType, causationID string, now time.Time) ([]*eventsv1.Envelope, error) {
	envs := make([]*eventsv1.Envelope, 0, len(types))
	for _, t := range types {
		env, err := d.Encode(o, t, causationID, now)
		if err != nil {
			return nil, fmt.Errorf("encode %s for order %s: %w", t, o.ID, err)
		}
		o.RecordEmitted(order.Step{EventType: t, EventID: env.GetEventId(), OccurredAt: now, Detail: ownDetail(o, t)}, now)
		envs = append(envs, env)
	}
	return envs, nil
}

// ownDetail is the step history's summary of an event the order emitted.
func ownDetail(o *order.Order, t order.EventType) string {
	switch t {
	case order.EventOrderCreated:
		return fmt.Sprintf("order placed: %d line(s), total %d %s (minor units)", len(o.Lines), o.TotalMinor, o.Currency)
	case order.EventOrderCancelled:
		if o.CancelDetail == "" {
			return "order cancelled: " + string(o.CancelReason)
		}
		return "order cancelled: " + string(o.CancelReason) + ": " + o.CancelDetail
	case order.EventOrderCompleted:
		return "order completed"
	}
	return string(t)
}

// Application is every use case of the service.
type Application struct {
	CreateOrder     CreateOrderHandler
	CancelOrder     CancelOrderHandler
	RecordSagaEvent RecordSagaEventHandler
	ExpireOrders    ExpireOrdersHandler
	GetOrder        GetOrderHandler
	ListOrders      ListOrdersHandler
	WatchOrder      WatchOrderHandler
	ListStuckSagas  ListStuckSagasHandler
}

// New wires the use cases. deadline is how long an order may stay PENDING;
// watchers carries the snapshots d.Changed is told of to WatchOrder streams
// (the caller connects the two, and runs watchers.RunPolling for changes
// other replicas make); backlog, when not nil, refuses new orders past its
// bound.
func New(d Deps, deadline time.Duration, watchers *Watchers, backlog *Backlog) Application {
	return Application{
		CreateOrder:     CreateOrderHandler{deps: d, deadline: deadline, backlog: backlog},
		CancelOrder:     CancelOrderHandler{deps: d},
		RecordSagaEvent: RecordSagaEventHandler{deps: d},
		ExpireOrders:    ExpireOrdersHandler{deps: d},
		GetOrder:        GetOrderHandler{repo: d.Repo},
		ListOrders:      ListOrdersHandler{repo: d.Repo},
		WatchOrder:      WatchOrderHandler{repo: d.Repo, watchers: watchers},
		ListStuckSagas:  ListStuckSagasHandler{deps: d},
	}
}
