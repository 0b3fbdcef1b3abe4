package app

import (
	"context"

	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// WatchOrderHandler follows one order until its saga ends.
type WatchOrderHandler struct {
	repo     Repository
	watchers *Watchers
}

// Handle sends the order as it is now, then again after each change, and
// returns after sending a terminal (COMPLETED or CANCELLED) snapshot, when
// ctx ends, or when send fails. The store is read once at the start; after
// that every change arrives through Watchers: those committed in this
// process as the snapshots their use cases wrote, at once and without a
// read; those other replicas commit from the process's one poller
// (Watchers.RunPolling), which reads a changed order once for all its
// streams. A stream that sends slower than the order changes skips to the
// newest state; it never holds up a commit.
//
// Open streams are bounded per customer and per process
// (TooManyStreamsError): the process bound is checked before the store is
// read, the customer's once the order says whose it is.
func (h WatchOrderHandler) Handle(ctx context.Context, orderID string, send func(*order.Order) error) error {
	slot, err := h.watchers.limits.admit()
	if err != nil {
		return err
	}
	defer slot.release()
	// Watch before the first read, so no change falls between the two.
	watch := h.watchers.Watch(orderID)
	defer watch.Stop()
	o, err := h.repo.Get(ctx, orderID)
	if err != nil {
		return err
	}
	if customer, ok := streamCustomer(ctx, o.CustomerID); ok {
		if err := slot.charge(customer); err != nil {
			return err
		}
	}
	watch.Read(o.Version)
	if err := send(o); err != nil {
		return err
	}
	for !o.Status.Terminal() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-watch.Ready():
		}
		// Older or equal: a push of what the first read has sent already.
		next := watch.Take()
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
