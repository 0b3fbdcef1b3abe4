package app

import (
	"context"
	"time"

	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// WatchOrderHandler follows one order until its saga ends.
type WatchOrderHandler struct {
	repo    Repository
	changes *Changes
	poll    time.Duration
}

// Handle sends the order as it is now, then again after each change, and
// returns after sending a terminal (COMPLETED or CANCELLED) snapshot, when
// ctx ends, or when send fails. Changes committed in this process wake it at
// once; the periodic re-read catches those of other replicas.
func (h WatchOrderHandler) Handle(ctx context.Context, orderID string, send func(*order.Order) error) error {
	// Subscribe before the first read, so no change falls between the two.
	changed, stop := h.changes.Subscribe(orderID)
	defer stop()
	o, err := h.repo.Get(ctx, orderID)
	if err != nil {
		return err
	}
	if err := send(o); err != nil {
		return err
	}
	poll := time.NewTicker(h.poll)
	defer poll.Stop()
	for !o.Status.Terminal() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-poll.C:
		}
		next, err := h.repo.Get(ctx, orderID)
		if err != nil {
			return err
		}
		if next.Version == o.Version {
			continue
		}
		o = next
		if err := send(o); err != nil {
			return err
		}
	}
	return nil
}
