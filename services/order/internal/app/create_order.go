package app

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// orderIDNamespace scopes order ids derived from request ids (UUIDv5).
var orderIDNamespace = uuid.MustParse("5f1d7c2e-3b8a-4e61-9c0d-2a7e4b9f6d13")

// OrderIDForRequest is the id of the order a request id creates: a retried
// CreateOrder lands on the same row and returns the first order.
func OrderIDForRequest(requestID string) string {
	return uuid.NewSHA1(orderIDNamespace, []byte("order/"+requestID)).String()
}

// CreateOrderHandler places orders: the PENDING order and its ORDER_CREATED
// commit together.
type CreateOrderHandler struct {
	deps     Deps
	deadline time.Duration
	backlog  *Backlog // nil: no bound
}

// Handle creates the order drafted in d (d.ID is ignored). With a request id
// the order id derives from it and ORDER_CREATED is caused by it, so a retry
// returns the first order and writes nothing; a reuse of the id for a
// different request (order.Draft.Fingerprint) is ErrRequestIDReused; without
// a request id both are fresh.
// Past the backlog's bound it returns *OverloadedError — except for a retry
// of an order created before, which gets that order back.
func (h CreateOrderHandler) Handle(ctx context.Context, d order.Draft) (*order.Order, error) {
	causationID := d.RequestID
	if d.RequestID == "" {
		// Determinism allow-list: without a request id nothing names the
		// order, so it gets fresh ids; clients that retry or replay send one.
		d.ID = events.NewID()
		causationID = events.NewID() // the command's own id
	} else {
		if _, err := uuid.Parse(d.RequestID); err != nil {
			return nil, order.Invalid("request_id", "must be a UUID, got %q", d.RequestID)
		}
		d.ID = OrderIDForRequest(d.RequestID)
	}
	now := h.deps.now()
	o, err := order.New(d, now, h.deadline)
	if err != nil {
		return nil, err
	}
	if h.backlog != nil {
		if err := h.backlog.admit(); err != nil {
			return h.existing(ctx, o, err)
		}
	}
	stored, created, err := h.create(ctx, o, causationID, now)
	if h.backlog != nil {
		h.backlog.done(created)
	}
	if err != nil {
		return nil, err
	}
	if !created {
		// A retry gets the first order back only when it is the same request.
		if err := stored.AnswersRetry(o.CustomerID, o.RequestHash); err != nil {
			return nil, err
		}
		return stored, nil
	}
	h.deps.emitted()
	h.deps.changed(stored)
	return stored, nil
}

func (h CreateOrderHandler) create(ctx context.Context, o *order.Order, causationID string, now time.Time) (*order.Order, bool, error) {
	envs, err := h.deps.emit(o, []order.EventType{order.EventOrderCreated}, causationID, now)
	if err != nil {
		return nil, false, err
	}
	stored, created, err := h.deps.Repo.Create(ctx, o, envs)
	if err != nil {
		return nil, false, fmt.Errorf("create order %s: %w", o.ID, err)
	}
	return stored, created, nil
}

// existing answers a refused request: a retry of an order that exists gets
// it back (the client must learn its first call worked), a reuse of its
// request id for another request ErrRequestIDReused, anything else the
// refusal. A refusal costs one primary-key read; only a real retry reads
// the whole order.
func (h CreateOrderHandler) existing(ctx context.Context, o *order.Order, refusal error) (*order.Order, error) {
	if o.RequestID == "" {
		return nil, refusal
	}
	customer, hash, found, err := h.deps.Repo.RequestOf(ctx, o.ID)
	if err != nil || !found {
		return nil, refusal
	}
	if err := order.CheckRetry(o.RequestID, customer, hash, o.CustomerID, o.RequestHash); err != nil {
		return nil, err
	}
	stored, err := h.deps.Repo.Get(ctx, o.ID)
	if err != nil {
		return nil, refusal
	}
	return stored, nil
}
