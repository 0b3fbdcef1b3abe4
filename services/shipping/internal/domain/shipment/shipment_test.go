package shipment_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

const (
	orderID    = "0192f0c4-1111-7000-8000-000000000001"
	customerID = "0192f0c4-2222-7000-8000-000000000002"
)

var (
	t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Minute)

	order = shipment.Order{
		OrderID: orderID, CustomerID: customerID,
		Address: shipment.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"},
		Lines:   []shipment.Line{{SKU: "BOOK-1", Quantity: 2, UnitPriceMinor: 1500}},
	}
	accepted = shipment.Booking{Accepted: true, Carrier: "simpost", TrackingNumber: "SP123", Location: "DE hub"}
	refused  = shipment.Booking{Reason: shipment.ReasonUndeliverableAddress, Detail: "no delivery to AQ"}
)

func created() *shipment.Shipment {
	r, err := shipment.Book(nil, order, shipment.Pack(orderID, order.Lines), accepted, t0)
	if err != nil {
		panic(err)
	}
	return r.Shipment
}

func failed() *shipment.Shipment {
	r, err := shipment.Book(nil, order, shipment.Pack(orderID, order.Lines), refused, t0)
	if err != nil {
		panic(err)
	}
	return r.Shipment
}

func cancelled() *shipment.Shipment {
	r, err := shipment.Cancel(created(), orderID, customerID, "", t0)
	if err != nil {
		panic(err)
	}
	return r.Shipment
}

func tombstone() *shipment.Shipment {
	r, err := shipment.Cancel(nil, orderID, customerID, "customer asked", t0)
	if err != nil {
		panic(err)
	}
	return r.Shipment
}

func TestBook(t *testing.T) {
	tests := []struct {
		name        string
		current     *shipment.Shipment
		booking     shipment.Booking
		wantStatus  shipment.Status // "" when nothing may change
		wantEvent   shipment.Event
		wantTracked int
	}{
		{name: "new order, carrier accepts → CREATED + SHIPMENT_CREATED", booking: accepted, wantStatus: shipment.StatusCreated,
			wantEvent: shipment.Created{ShipmentID: shipment.IDFor(orderID), Carrier: "simpost", TrackingNumber: "SP123"}, wantTracked: 1},
		{name: "new order, carrier refuses → FAILED + SHIPMENT_FAILED", booking: refused, wantStatus: shipment.StatusFailed,
			wantEvent: shipment.Failed{ShipmentID: shipment.IDFor(orderID), Reason: shipment.ReasonUndeliverableAddress, Detail: "no delivery to AQ"}, wantTracked: 1},
		{name: "second INVENTORY_UPDATED on CREATED changes nothing", current: created(), booking: accepted},
		{name: "second INVENTORY_UPDATED on FAILED changes nothing", current: failed(), booking: accepted},
		{name: "late INVENTORY_UPDATED after the cancel (tombstone) books nothing", current: tombstone(), booking: accepted},
		{name: "INVENTORY_UPDATED on a cancelled shipment books nothing", current: cancelled(), booking: accepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := clone(tt.current)
			r, err := shipment.Book(tt.current, order, shipment.Pack(orderID, order.Lines), tt.booking, t1)
			if err != nil {
				t.Fatalf("Book: %v", err)
			}
			if !reflect.DeepEqual(tt.current, before) {
				t.Fatalf("Book modified its input: %+v", tt.current)
			}
			if tt.wantStatus == "" {
				if r.Changed() || len(r.Events) != 0 {
					t.Fatalf("want no change, got %+v", r)
				}
				return
			}
			s := r.Shipment
			if s.Status != tt.wantStatus || s.OrderID != orderID || s.CustomerID != customerID || s.ShipmentID != shipment.IDFor(orderID) {
				t.Fatalf("shipment = %+v", s)
			}
			if len(r.Events) != 1 || !reflect.DeepEqual(r.Events[0], tt.wantEvent) {
				t.Fatalf("events = %+v, want [%+v]", r.Events, tt.wantEvent)
			}
			if len(s.Tracking) != tt.wantTracked || s.Tracking[0].Status != tt.wantStatus || !s.Tracking[0].At.Equal(t1) {
				t.Fatalf("tracking = %+v", s.Tracking)
			}
			if !s.CreatedAt.Equal(t1) || !s.UpdatedAt.Equal(t1) || s.Address != order.Address || len(s.Parcels) != 1 {
				t.Fatalf("shipment = %+v", s)
			}
			if tt.wantStatus == shipment.StatusFailed && (s.Carrier != "" || s.TrackingNumber != "" || s.FailureReason != shipment.ReasonUndeliverableAddress) {
				t.Fatalf("failed shipment = %+v", s)
			}
		})
	}
}

func TestBookRejectsBadInput(t *testing.T) {
	noLines := order
	noLines.Lines = nil
	zeroQty := order
	zeroQty.Lines = []shipment.Line{{SKU: "A1", Quantity: 0}}
	noOrder := order
	noOrder.OrderID = ""
	noCountry := order
	noCountry.Address.CountryCode = ""
	tests := []struct {
		name    string
		order   shipment.Order
		booking shipment.Booking
	}{
		{"no lines", noLines, accepted},
		{"zero quantity", zeroQty, accepted},
		{"no order id", noOrder, accepted},
		{"no country", noCountry, accepted},
		{"accepted without tracking number", order, shipment.Booking{Accepted: true, Carrier: "x"}},
		{"refused without reason", order, shipment.Booking{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := shipment.Book(nil, tt.order, nil, tt.booking, t1)
			if !errors.Is(err, shipment.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	tests := []struct {
		name       string
		current    *shipment.Shipment
		wantChange bool
		wantTrack  int
		wantEvent  bool // SHIPMENT_CANCELLED: only for a booked shipment
	}{
		{name: "ORDER_CANCELLED first → CANCELLED tombstone, no event", current: nil, wantChange: true, wantTrack: 1},
		{name: "CREATED → CANCELLED with a timeline entry and SHIPMENT_CANCELLED", current: created(), wantChange: true, wantTrack: 2, wantEvent: true},
		{name: "FAILED stays FAILED (the cancel is our own SHIPMENT_FAILED coming back)", current: failed()},
		{name: "CANCELLED stays CANCELLED", current: cancelled()},
		{name: "a tombstone stays as it is", current: tombstone()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := clone(tt.current)
			r, err := shipment.Cancel(tt.current, orderID, customerID, "customer asked", t1)
			if err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			if !reflect.DeepEqual(tt.current, before) {
				t.Fatalf("Cancel modified its input")
			}
			if shipment.NeedsCarrierCancel(tt.current) != tt.wantEvent {
				t.Fatalf("NeedsCarrierCancel = %v, want %v", !tt.wantEvent, tt.wantEvent)
			}
			if !tt.wantEvent && len(r.Events) != 0 {
				t.Fatalf("Cancel emitted %+v, want nothing", r.Events)
			}
			if tt.wantEvent {
				want := shipment.Cancelled{ShipmentID: tt.current.ShipmentID, Carrier: tt.current.Carrier, TrackingNumber: tt.current.TrackingNumber}
				if len(r.Events) != 1 || r.Events[0] != want {
					t.Fatalf("Cancel emitted %+v, want %+v", r.Events, want)
				}
			}
			if r.Changed() != tt.wantChange {
				t.Fatalf("changed = %v, want %v", r.Changed(), tt.wantChange)
			}
			if !tt.wantChange {
				return
			}
			s := r.Shipment
			if s.Status != shipment.StatusCancelled || s.ShipmentID != shipment.IDFor(orderID) || s.CustomerID != customerID {
				t.Fatalf("shipment = %+v", s)
			}
			last := s.Tracking[len(s.Tracking)-1]
			if len(s.Tracking) != tt.wantTrack || last.Status != shipment.StatusCancelled || !last.At.Equal(t1) || !s.UpdatedAt.Equal(t1) {
				t.Fatalf("tracking = %+v, updated %v", s.Tracking, s.UpdatedAt)
			}
			if tt.current == nil && !s.IsTombstone() {
				t.Fatalf("want a tombstone, got %+v", s)
			}
			if tt.current != nil && (s.IsTombstone() || s.TrackingNumber != tt.current.TrackingNumber) {
				t.Fatalf("cancelled shipment lost its booking: %+v", s)
			}
		})
	}
	if _, err := shipment.Cancel(nil, "", customerID, "", t1); !errors.Is(err, shipment.ErrInvalid) {
		t.Fatalf("Cancel without order id: err = %v, want ErrInvalid", err)
	}
}

func TestPack(t *testing.T) {
	id := shipment.IDFor(orderID)
	tests := []struct {
		name  string
		lines []shipment.Line
		want  []shipment.Parcel
	}{
		{"one small line", []shipment.Line{{SKU: "A1", Quantity: 2, UnitPriceMinor: 10}},
			[]shipment.Parcel{{ParcelID: id + "-p1", Lines: []shipment.Line{{SKU: "A1", Quantity: 2, UnitPriceMinor: 10}}, WeightGrams: 1200}}},
		{"exactly one full parcel", []shipment.Line{{SKU: "A1", Quantity: 5}},
			[]shipment.Parcel{{ParcelID: id + "-p1", Lines: []shipment.Line{{SKU: "A1", Quantity: 5}}, WeightGrams: 2700}}},
		{"a line spans parcels, the next fills the gap", []shipment.Line{{SKU: "A1", Quantity: 7}, {SKU: "B2", Quantity: 4}},
			[]shipment.Parcel{
				{ParcelID: id + "-p1", Lines: []shipment.Line{{SKU: "A1", Quantity: 5}}, WeightGrams: 2700},
				{ParcelID: id + "-p2", Lines: []shipment.Line{{SKU: "A1", Quantity: 2}, {SKU: "B2", Quantity: 3}}, WeightGrams: 2700},
				{ParcelID: id + "-p3", Lines: []shipment.Line{{SKU: "B2", Quantity: 1}}, WeightGrams: 700},
			}},
		{"no lines, no parcels", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shipment.Pack(orderID, tt.lines); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Pack = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestIDForIsStable(t *testing.T) {
	if shipment.IDFor(orderID) != shipment.IDFor(orderID) || shipment.IDFor(orderID) == shipment.IDFor(customerID) {
		t.Fatal("IDFor must be a function of the order id only")
	}
}

func clone(s *shipment.Shipment) *shipment.Shipment {
	if s == nil {
		return nil
	}
	c := *s
	c.Parcels = append([]shipment.Parcel(nil), s.Parcels...)
	c.Tracking = append([]shipment.TrackingEntry(nil), s.Tracking...)
	return &c
}
