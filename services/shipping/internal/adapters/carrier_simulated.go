package adapters

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// Simulated carrier rules (also in services/shipping/README.md), checked in
// this order:
//
//  1. destination country in UndeliverableCountries ("AQ", "KP")
//     → refused, UNDELIVERABLE_ADDRESS;
//  2. postal code "00000" → refused, UNDELIVERABLE_ADDRESS;
//  3. more than MaxParcels parcels (i.e. more than 100 units at 5 per parcel)
//     → refused, CARRIER_REJECTED;
//  4. otherwise accepted by carrier "simpost", tracking number "SP" + 12
//     digits derived from the order id (the same order always gets the same
//     number), depot "<country> hub".
//
// It never fails to answer, so CARRIER_UNAVAILABLE does not occur here.
var UndeliverableCountries = []string{"AQ", "KP"}

// Carrier rule constants.
const (
	UndeliverablePostalCode = "00000"
	MaxParcels              = 20
	SimulatedCarrierName    = "simpost"
)

// SimulatedCarrier books shipments by the rules above, deterministically,
// and records cancelled bookings (a real carrier's cancel endpoint; it always
// answers, and cancelling the same booking again changes nothing).
type SimulatedCarrier struct {
	mu        sync.Mutex
	cancelled map[string]string // tracking number → order id
	calls     int
}

// NewSimulatedCarrier returns a carrier with no cancellations recorded.
func NewSimulatedCarrier() *SimulatedCarrier {
	return &SimulatedCarrier{cancelled: map[string]string{}}
}

// Cancel implements app.Carrier: the booking is recorded as cancelled. A
// tracking number this carrier never issued for the order is an error.
func (c *SimulatedCarrier) Cancel(_ context.Context, req app.CancelRequest) error {
	if req.Carrier != SimulatedCarrierName || req.TrackingNumber != TrackingNumberFor(req.OrderID) {
		return fmt.Errorf("%s issued no booking %q (carrier %q) for order %s", SimulatedCarrierName, req.TrackingNumber, req.Carrier, req.OrderID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.cancelled[req.TrackingNumber] = req.OrderID
	return nil
}

// Cancellations returns the cancelled bookings (tracking number → order id)
// and how many cancel calls were made (repeats included).
func (c *SimulatedCarrier) Cancellations() (map[string]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.cancelled), c.calls
}

// Book implements app.Carrier.
func (*SimulatedCarrier) Book(_ context.Context, req app.BookingRequest) (shipment.Booking, error) {
	country := req.Address.CountryCode
	switch {
	case slices.Contains(UndeliverableCountries, country):
		return shipment.Booking{Reason: shipment.ReasonUndeliverableAddress,
			Detail: fmt.Sprintf("%s does not deliver to country %s", SimulatedCarrierName, country)}, nil
	case req.Address.PostalCode == UndeliverablePostalCode:
		return shipment.Booking{Reason: shipment.ReasonUndeliverableAddress,
			Detail: fmt.Sprintf("postal code %s does not exist in %s", UndeliverablePostalCode, country)}, nil
	case len(req.Parcels) > MaxParcels:
		return shipment.Booking{Reason: shipment.ReasonCarrierRejected,
			Detail: fmt.Sprintf("%d parcels exceed the carrier's limit of %d per shipment", len(req.Parcels), MaxParcels)}, nil
	}
	return shipment.Booking{
		Accepted:       true,
		Carrier:        SimulatedCarrierName,
		TrackingNumber: TrackingNumberFor(req.OrderID),
		Location:       country + " hub",
	}, nil
}

// TrackingNumberFor is the simulated carrier's tracking number of an order:
// "SP" and 12 digits from a hash of the order id.
func TrackingNumberFor(orderID string) string {
	sum := sha256.Sum256([]byte(orderID))
	return fmt.Sprintf("SP%012d", binary.BigEndian.Uint64(sum[:8])%1_000_000_000_000)
}
