package adapters

import (
	"context"
	"strings"
	"testing"

	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

func TestSimulatedCarrierRules(t *testing.T) {
	const orderID = "0192f0c4-1111-7000-8000-000000000001"
	de := shipment.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"}
	with := func(mod func(*shipment.Address)) shipment.Address { a := de; mod(&a); return a }
	oneParcel := shipment.Pack(orderID, []shipment.Line{{SKU: "A1", Quantity: 3}})
	tests := []struct {
		name       string
		address    shipment.Address
		parcels    []shipment.Parcel
		wantReason shipment.FailureReason // ReasonNone: accepted
		wantDetail string
	}{
		{"deliverable address", de, oneParcel, shipment.ReasonNone, ""},
		{"Antarctica is undeliverable", with(func(a *shipment.Address) { a.CountryCode = "AQ" }), oneParcel, shipment.ReasonUndeliverableAddress, "country AQ"},
		{"North Korea is undeliverable", with(func(a *shipment.Address) { a.CountryCode = "KP" }), oneParcel, shipment.ReasonUndeliverableAddress, "country KP"},
		{"postal code 00000 is undeliverable", with(func(a *shipment.Address) { a.PostalCode = "00000" }), oneParcel, shipment.ReasonUndeliverableAddress, "postal code 00000"},
		{"20 parcels are accepted", de, shipment.Pack(orderID, []shipment.Line{{SKU: "A1", Quantity: 100}}), shipment.ReasonNone, ""},
		{"21 parcels are rejected", de, shipment.Pack(orderID, []shipment.Line{{SKU: "A1", Quantity: 101}}), shipment.ReasonCarrierRejected, "21 parcels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewSimulatedCarrier().Book(context.Background(), app.BookingRequest{OrderID: orderID, Address: tt.address, Parcels: tt.parcels})
			if err != nil {
				t.Fatalf("Book: %v", err)
			}
			if tt.wantReason == shipment.ReasonNone {
				if !b.Accepted || b.Carrier != SimulatedCarrierName || b.TrackingNumber != TrackingNumberFor(orderID) || b.Location != "DE hub" {
					t.Fatalf("booking = %+v, want accepted by %s", b, SimulatedCarrierName)
				}
				return
			}
			if b.Accepted || b.Reason != tt.wantReason || !strings.Contains(b.Detail, tt.wantDetail) {
				t.Fatalf("booking = %+v, want refused %s mentioning %q", b, tt.wantReason, tt.wantDetail)
			}
		})
	}
}

func TestSimulatedCarrierRecordsCancellations(t *testing.T) {
	c := NewSimulatedCarrier()
	ctx := context.Background()
	req := app.CancelRequest{OrderID: "order-a", Carrier: SimulatedCarrierName, TrackingNumber: TrackingNumberFor("order-a")}
	for range 2 { // idempotent: a retry after a crash asks again
		if err := c.Cancel(ctx, req); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
	}
	got, calls := c.Cancellations()
	if len(got) != 1 || got[req.TrackingNumber] != "order-a" || calls != 2 {
		t.Fatalf("cancellations %v after %d calls, want one booking of order-a after 2", got, calls)
	}
	for _, bad := range []app.CancelRequest{
		{OrderID: "order-a", Carrier: SimulatedCarrierName, TrackingNumber: TrackingNumberFor("order-b")},
		{OrderID: "order-a", Carrier: "otherpost", TrackingNumber: TrackingNumberFor("order-a")},
	} {
		if err := c.Cancel(ctx, bad); err == nil {
			t.Fatalf("Cancel(%+v) = nil, want an error for a booking it never made", bad)
		}
	}
}

func TestTrackingNumberIsDerivedFromTheOrder(t *testing.T) {
	a, b := TrackingNumberFor("order-a"), TrackingNumberFor("order-b")
	if a != TrackingNumberFor("order-a") || a == b || len(a) != 14 || !strings.HasPrefix(a, "SP") {
		t.Fatalf("tracking numbers %q, %q: want stable, distinct, SP + 12 digits", a, b)
	}
}
