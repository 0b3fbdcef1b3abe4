package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// expireBatch bounds one scan's query; a full batch makes the scan go on.
const expireBatch = 100

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
// (TIMEOUT + ORDER_CANCELLED), each in its own transaction with the row
// locked and the status checked again, since a terminal outcome may win the
// race. It returns how many orders it cancelled.
func (h ExpireOrdersHandler) Handle(ctx context.Context) (int, error) {
	cancelled := 0
	for {
		now := h.deps.now()
		ids, err := h.deps.Repo.PendingPastDeadline(ctx, now, expireBatch)
		if err != nil {
			return cancelled, fmt.Errorf("find expired orders: %w", err)
		}
		var errs []error
		for _, id := range ids {
			var emitted bool
			_, _, err := h.deps.Repo.Update(ctx, id, "", func(o *order.Order) ([]*eventsv1.Envelope, error) {
				types := o.Expire(now)
				emitted = len(types) > 0
				return h.deps.emit(o, types, TimeoutCausationID(o.ID), now)
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("expire order %s: %w", id, err))
				continue
			}
			if emitted {
				cancelled++
				h.deps.changed(id)
			}
		}
		if len(errs) > 0 || len(ids) < expireBatch {
			return cancelled, errors.Join(errs...)
		}
	}
}
