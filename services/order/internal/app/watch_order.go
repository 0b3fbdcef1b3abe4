package app

import (
	"context"
	"time"

	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// WatchOrderHandler follows one order until its saga ends.
type WatchOrderHandler struct {
	repo     Repository
	watchers *Watchers
	// fallbackPoll is how often a stream asks the store for the order's
	// version, to find changes other replicas committed.
	fallbackPoll time.Duration
}

// Handle sends the order as it is now, then again after each change, and
// returns after sending a terminal (COMPLETED or CANCELLED) snapshot, when
// ctx ends, or when send fails. The store is read once at the start; after
// that, changes committed in this process arrive as the snapshots their use
// cases wrote (Watchers), at once and without a read. Every fallbackPoll
// the order's version alone is read, and the whole order only when another
// replica changed it. A stream that sends slower than the order changes
// skips to the newest state; it never holds up a commit.
func (h WatchOrderHandler) Handle(ctx context.Context, orderID string, send func(*order.Order) error) error {
	// Watch before the first read, so no change falls between the two.
	watch := h.watchers.Watch(orderID)
	defer watch.Stop()
	o, err := h.repo.Get(ctx, orderID)
	if err != nil {
		return err
	}
	if err := send(o); err != nil {
		return err
	}
	fallback := time.NewTicker(h.fallbackPoll)
	defer fallback.Stop()
	for !o.Status.Terminal() {
		var next *order.Order
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-watch.Ready():
			next = watch.Take()
		case <-fallback.C:
			if next, err = h.readIfNewer(ctx, orderID, o.Version); err != nil {
				return err
			}
		}
		// Older or equal: a push of what the first read or a fallback
		// read has sent already.
		if next == nil || next.Version <= o.Version {
			continue
		}
		o = next
		if err := send(o); err != nil {
			return err
		}
	}
	return nil
}

// readIfNewer reads the order when its stored version is past known, else
// returns nil: one primary-key read of one column while nothing changed.
func (h WatchOrderHandler) readIfNewer(ctx context.Context, orderID string, known int64) (*order.Order, error) {
	version, err := h.repo.VersionOf(ctx, orderID)
	if err != nil || version <= known {
		return nil, err
	}
	return h.repo.Get(ctx, orderID)
}
