package app

import (
	"context"
	"fmt"
	"time"

	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// CreateShipment is INVENTORY_UPDATED: the order's goods are paid and
// deducted; ship them.
type CreateShipment struct {
	EventID    string
	OrderID    string
	CustomerID string
	Address    shipment.Address
	Lines      []shipment.Line
}

// CreateShipmentHandler books a shipment with the carrier, unless the order
// is known already (a duplicate, or a cancel that came first).
type CreateShipmentHandler struct {
	repo    Repository
	carrier Carrier
	encode  EventEncoder
	now     func() time.Time
}

// Handle applies the command once per event id.
func (h CreateShipmentHandler) Handle(ctx context.Context, cmd CreateShipment) error {
	order := shipment.Order{OrderID: cmd.OrderID, CustomerID: cmd.CustomerID, Address: cmd.Address, Lines: cmd.Lines}
	if err := order.Validate(); err != nil {
		return err
	}
	_, err := h.repo.Apply(ctx, cmd.OrderID, cmd.EventID, func(current *shipment.Shipment) (Change, error) {
		var (
			parcels []shipment.Parcel
			booking shipment.Booking
		)
		// The carrier is asked only for an order shipping has not seen, and
		// under the order's lock, so one order is never booked twice.
		if shipment.NeedsBooking(current) {
			parcels = shipment.Pack(order.OrderID, order.Lines)
			var err error
			booking, err = h.carrier.Book(ctx, BookingRequest{OrderID: order.OrderID, Address: order.Address, Parcels: parcels})
			if err != nil {
				return Change{}, fmt.Errorf("book shipment for order %s: %w", order.OrderID, err)
			}
		}
		now := h.now()
		result, err := shipment.Book(current, order, parcels, booking, now)
		if err != nil {
			return Change{}, err
		}
		return changeOf(result, h.encode, cmd.EventID, now)
	})
	if err != nil {
		return fmt.Errorf("create shipment for order %s: %w", cmd.OrderID, err)
	}
	return nil
}
