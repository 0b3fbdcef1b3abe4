package app

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// expireBatch is how many expired orders one sweep transaction cancels: big
// enough that a backlog of thousands is cleared in a few dozen commits, small
// enough that the rows stay locked for milliseconds only.
const expireBatch = 200

// timeoutNamespace scopes the causation ids of timeout cancellations (UUIDv5).
var timeoutNamespace = uuid.MustParse("c6a4f0d2-8e5b-4b7a-a1f3-5d9e2c7b0e48")

// TimeoutCausationID is the command id of an order's timeout cancellation.
// It is derived, not drawn, so a scan that crashed after committing and
// reruns would emit the very same ORDER_CANCELLED id.
func TimeoutCausationID(orderID string) string {
	return uuid.NewSHA1(timeoutNamespace, []byte("timeout/"+orderID)).String()
}

// ExpireOrdersHandler cancels PENDING orders whose deadline has passed.
type ExpireOrdersHandler struct{ deps Deps }

// Handle cancels every PENDING order past its deadline at the clock's now
// (TIMEOUT + ORDER_CANCELLED) in batches of expireBatch, each batch one
// transaction with its rows locked and each status checked again, since a
// terminal outcome may win the race. It returns how many orders it
// cancelled. A full batch makes it go on at once, so a backlog of expired
// orders is cleared in one sweep, not one batch per tick.
func (h ExpireOrdersHandler) Handle(ctx context.Context) (int, error) {
	cancelled := 0
	for {
		now := h.deps.now()
		changed, found, err := h.deps.Repo.UpdatePastDeadline(ctx, now, expireBatch, func(o *order.Order) ([]*eventsv1.Envelope, error) {
			return h.deps.emit(o, o.Expire(now), TimeoutCausationID(o.ID), now)
		})
		if len(changed) > 0 {
			h.deps.emitted() // each expired order emits ORDER_CANCELLED
		}
		for _, o := range changed {
			cancelled++
			h.deps.changed(o)
			if o.Status == order.StatusCancelled { // Expire changes nothing else, but say so
				h.deps.ended(ctx, o)
			}
		}
		if err != nil {
			return cancelled, fmt.Errorf("expire orders: %w", err)
		}
		// Go on only while batches are full and move: orders whose change
		// fails stay at the head and must not spin the loop.
		if found < expireBatch || len(changed) == 0 {
			return cancelled, nil
		}
	}
}
