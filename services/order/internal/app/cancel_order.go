package app

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// cancelRequestNamespace scopes the inbox keys that mark a cancel request id
// as used (UUIDv5): a key of its own, never an event id, so a client's
// request id cannot shadow a saga event the service still has to apply.
var cancelRequestNamespace = uuid.MustParse("9d3b6e1a-47c2-4f0e-8a5d-1c6f2e9b7a34")

// CancelRequestKey is the inbox key that records requestID as used by a
// cancel.
func CancelRequestKey(requestID string) string {
	return uuid.NewSHA1(cancelRequestNamespace, []byte("cancel-request/"+requestID)).String()
}

// CancelOrderHandler cancels an order for its customer.
type CancelOrderHandler struct{ deps Deps }

// Handle cancels a PENDING order (CUSTOMER_REQUESTED + ORDER_CANCELLED) and
// returns it. An order already CANCELLED comes back unchanged; a COMPLETED one
// gives order.ErrNotPending, an unknown one order.ErrNotFound. With
// onlyCustomer set (a customer cancelling), an order of another customer is
// answered exactly like an unknown one and left as it is; "" cancels any
// order (operators).
//
// requestID (optional, a UUID) is the command's id: ORDER_CANCELLED is
// caused by it, so its event id derives from it and a replay of the call
// emits the very same event. It is claimed once (inbox, same transaction):
// a retry finds the order CANCELLED and gets it back unchanged; the id
// reused on another order that is not cancelled is order.ErrRequestIDReused
// (two cancels with one causation would share an event id, and the
// services' inboxes would drop the second). Without it the command gets a
// fresh id.
func (h CancelOrderHandler) Handle(ctx context.Context, orderID, reason, onlyCustomer, requestID string) (*order.Order, error) {
	commandID, claim := requestID, ""
	if requestID == "" {
		// Determinism allow-list: a cancel without a request id has no cause
		// to derive from; its caller cannot retry or replay it exactly.
		commandID = events.NewID()
	} else {
		if _, err := uuid.Parse(requestID); err != nil {
			return nil, order.Invalid("request_id", "must be a UUID, got %q", requestID)
		}
		claim = CancelRequestKey(requestID)
	}
	var emitted, ended bool
	o, applied, err := h.deps.Repo.Update(ctx, orderID, claim, func(o *order.Order) ([]*eventsv1.Envelope, error) {
		// Checked on the locked row: the change and the check are one step.
		if onlyCustomer != "" && o.CustomerID != onlyCustomer {
			return nil, order.NotFound(orderID)
		}
		now := h.deps.now()
		types, err := o.CancelByCustomer(reason, now)
		if err != nil {
			return nil, err
		}
		emitted, ended = len(types) > 0, endsSaga(types)
		return h.deps.emit(o, types, commandID, now)
	})
	if err != nil {
		return nil, err
	}
	if !applied {
		return h.retried(ctx, orderID, onlyCustomer, requestID)
	}
	if emitted {
		h.deps.emitted()
		h.deps.changed(o)
	}
	if ended {
		h.deps.ended(ctx, o)
	}
	return o, nil
}

// retried answers a cancel whose request id was used before: the order as
// it is when it is cancelled (the first call's answer, or a later state of
// it), else the id belonged to another order's cancel.
func (h CancelOrderHandler) retried(ctx context.Context, orderID, onlyCustomer, requestID string) (*order.Order, error) {
	o, err := h.deps.Repo.Get(ctx, orderID)
	if err != nil {
		return nil, err
	}
	if onlyCustomer != "" && o.CustomerID != onlyCustomer {
		return nil, order.NotFound(orderID)
	}
	if o.Status != order.StatusCancelled {
		return nil, fmt.Errorf("%w: request_id %s cancelled another order; use a new request_id for a new cancel",
			order.ErrRequestIDReused, requestID)
	}
	return o, nil
}
