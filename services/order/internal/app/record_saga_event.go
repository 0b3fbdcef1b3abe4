package app

import (
	"context"
	"fmt"
	"time"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// SagaEvent is another service's event about an order, as the order sees it.
type SagaEvent struct {
	OrderID    string
	EventID    string
	Type       order.EventType
	OccurredAt time.Time
	Detail     string // the step history's summary
}

// RecordSagaEventHandler applies the saga's outcome events to orders.
type RecordSagaEventHandler struct{ deps Deps }

// Handle records ev in the order's step history and applies the order's rule
// for it (order.Observe), emitting ORDER_CANCELLED or ORDER_COMPLETED caused
// by ev, exactly once per event id. An unknown order gives order.ErrNotFound.
func (h RecordSagaEventHandler) Handle(ctx context.Context, ev SagaEvent) error {
	var emitted, ended bool
	stored, applied, err := h.deps.Repo.Update(ctx, ev.OrderID, ev.EventID, func(o *order.Order) ([]*eventsv1.Envelope, error) {
		now := h.deps.now()
		// Cut to what the store keeps, so the snapshot watchers get equals a read.
		occurredAt := ev.OccurredAt.UTC().Truncate(time.Microsecond)
		types := o.Observe(order.Step{EventType: ev.Type, EventID: ev.EventID, OccurredAt: occurredAt, Detail: ev.Detail}, now)
		// set, not or-ed: the store may rerun this after a deadlock
		emitted, ended = len(types) > 0, endsSaga(types)
		return h.deps.emit(o, types, ev.EventID, now)
	})
	if err != nil {
		return fmt.Errorf("record %s %s for order %s: %w", ev.Type, ev.EventID, ev.OrderID, err)
	}
	if applied {
		if emitted {
			h.deps.emitted()
		}
		h.deps.changed(stored)
		if ended {
			h.deps.ended(ctx, stored)
		}
	}
	return nil
}
