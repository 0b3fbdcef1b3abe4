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
// gives order.ErrNotPending, an unknown one order.ErrNotFound. With
// onlyCustomer set (a customer cancelling), an order of another customer is
// answered exactly like an unknown one and left as it is; "" cancels any
// order (operators).
func (h CancelOrderHandler) Handle(ctx context.Context, orderID, reason, onlyCustomer string) (*order.Order, error) {
	commandID := events.NewID()
	var emitted, ended bool
	o, _, err := h.deps.Repo.Update(ctx, orderID, "", func(o *order.Order) ([]*eventsv1.Envelope, error) {
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
	if emitted {
		h.deps.changed(o)
	}
	if ended {
		h.deps.ended(ctx, o)
	}
	return o, nil
}
