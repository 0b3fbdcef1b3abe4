package app

import (
	"context"

	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// CancelOrderHandler cancels an order for its customer.
type CancelOrderHandler struct{ deps Deps }

// Handle cancels a PENDING order (CUSTOMER_REQUESTED + ORDER_CANCELLED) and
// returns it. An order already CANCELLED comes back unchanged; a COMPLETED one
// gives order.ErrNotPending, an unknown one order.ErrNotFound.
func (h CancelOrderHandler) Handle(ctx context.Context, orderID, reason string) (*order.Order, error) {
	commandID := events.NewID()
	var emitted bool
	o, _, err := h.deps.Repo.Update(ctx, orderID, "", func(o *order.Order) ([]*eventsv1.Envelope, error) {
		now := h.deps.now()
		types, err := o.CancelByCustomer(reason, now)
		if err != nil {
			return nil, err
		}
		emitted = len(types) > 0
		return h.deps.emit(o, types, commandID, now)
	})
	if err != nil {
		return nil, err
	}
	if emitted {
		h.deps.changed(o)
	}
	return o, nil
}
