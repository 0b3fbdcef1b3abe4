package stock

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func item(sku string, price int64, currency string, levels Levels) *Item {
	levels.SKU = sku
	return &Item{Product: Product{SKU: sku, Name: sku, UnitPrice: Money{AmountMinor: price, Currency: currency}}, Levels: levels}
}

// catalog has A (10 available) and B (3 available), both EUR.
func catalog() Catalog {
	return Catalog{
		"A": item("A", 100, "EUR", Levels{Available: 10, Added: 10}),
		"B": item("B", 250, "EUR", Levels{Available: 3, Added: 3}),
	}
}

func order(lines ...Line) Order {
	return Order{OrderID: "o1", CustomerID: "c1", Lines: lines, Total: Money{AmountMinor: 1, Currency: "EUR"},
		PaymentToken: "tok", ShippingAddress: Address{Name: "N", Line1: "L", City: "C", CountryCode: "DE"}}
}

func levels(c Catalog) map[string]Levels {
	out := map[string]Levels{}
	for sku, it := range c {
		out[sku] = it.Levels
	}
	return out
}

func assertBalanced(t *testing.T, c Catalog) {
	t.Helper()
	for sku, it := range c {
		if !it.Levels.Balanced() {
			t.Errorf("%s unbalanced: %+v", sku, it.Levels)
		}
	}
}

func TestReserve(t *testing.T) {
	tests := []struct {
		name       string
		existing   *Reservation
		order      Order
		wantStatus Status // "" = nothing saved
		wantEvent  Event
		wantA      Levels
		wantB      Levels
	}{
		{
			name:       "every line reserved",
			order:      order(Line{"A", 4, 100}, Line{"B", 3, 250}),
			wantStatus: StatusReserved,
			wantA:      Levels{SKU: "A", Available: 6, Reserved: 4, Added: 10},
			wantB:      Levels{SKU: "B", Available: 0, Reserved: 3, Added: 3},
		},
		{
			name:       "insufficient stock on the second line reserves nothing",
			order:      order(Line{"A", 4, 100}, Line{"B", 4, 250}),
			wantStatus: StatusRejected,
			wantEvent:  Rejected{SKU: "B", Requested: 4, Available: 3, Reason: RejectInsufficientStock},
		},
		{
			name:       "unknown sku",
			order:      order(Line{"A", 1, 100}, Line{"ZZ", 2, 5}),
			wantStatus: StatusRejected,
			wantEvent:  Rejected{SKU: "ZZ", Requested: 2, Available: 0, Reason: RejectUnknownSKU},
		},
		{
			name:       "price mismatch",
			order:      order(Line{"A", 1, 99}),
			wantStatus: StatusRejected,
			wantEvent:  Rejected{SKU: "A", Requested: 1, Available: 10, Reason: RejectPriceMismatch},
		},
		{
			name: "currency mismatch",
			order: func() Order {
				o := order(Line{"A", 1, 100})
				o.Total.Currency = "USD"
				return o
			}(),
			wantStatus: StatusRejected,
			wantEvent:  Rejected{SKU: "A", Requested: 1, Available: 10, Reason: RejectCurrencyMismatch},
		},
		{
			name:       "first failing line is reported",
			order:      order(Line{"B", 5, 250}, Line{"ZZ", 1, 1}),
			wantStatus: StatusRejected,
			wantEvent:  Rejected{SKU: "B", Requested: 5, Available: 3, Reason: RejectInsufficientStock},
		},
		{
			name:       "exactly the last units",
			order:      order(Line{"B", 3, 250}),
			wantStatus: StatusReserved,
			wantA:      Levels{SKU: "A", Available: 10, Added: 10},
			wantB:      Levels{SKU: "B", Reserved: 3, Added: 3},
		},
		{
			name:     "late ORDER_CREATED after a cancel tombstone reserves nothing",
			existing: Tombstone("o1", "c1", now),
			order:    order(Line{"A", 1, 100}),
		},
		{
			name:     "a second ORDER_CREATED for a reserved order changes nothing",
			existing: &Reservation{OrderID: "o1", Status: StatusReserved},
			order:    order(Line{"A", 1, 100}),
		},
		{
			name:     "a second ORDER_CREATED for a rejected order changes nothing",
			existing: &Reservation{OrderID: "o1", Status: StatusRejected},
			order:    order(Line{"A", 1, 100}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := catalog()
			before := levels(c)
			res, ev, err := Reserve(tt.existing, "r1", tt.order, c, now)
			if err != nil {
				t.Fatalf("Reserve: %v", err)
			}
			assertBalanced(t, c)
			if tt.wantStatus == "" {
				if res != nil || ev != nil {
					t.Fatalf("got %+v, %+v; want nothing", res, ev)
				}
				if !reflect.DeepEqual(levels(c), before) {
					t.Fatalf("levels changed: %+v", levels(c))
				}
				return
			}
			if res.Status != tt.wantStatus || res.OrderID != "o1" || res.ReservationID != "r1" || !res.CreatedAt.Equal(now) {
				t.Fatalf("reservation %+v", res)
			}
			if tt.wantStatus == StatusRejected {
				if !reflect.DeepEqual(ev, tt.wantEvent) {
					t.Fatalf("event %+v, want %+v", ev, tt.wantEvent)
				}
				if !reflect.DeepEqual(levels(c), before) {
					t.Fatalf("a rejection moved stock: %+v", levels(c))
				}
				return
			}
			want := Reserved{ReservationID: "r1", Lines: tt.order.Lines, Total: tt.order.Total, PaymentToken: "tok", ShippingAddress: tt.order.ShippingAddress}
			if !reflect.DeepEqual(ev, want) {
				t.Fatalf("event %+v, want %+v", ev, want)
			}
			if c["A"].Levels != tt.wantA || c["B"].Levels != tt.wantB {
				t.Fatalf("levels A %+v B %+v", c["A"].Levels, c["B"].Levels)
			}
		})
	}
}

func TestReserveSameSKUTwiceCountsBothLines(t *testing.T) {
	c := catalog()
	res, ev, err := Reserve(nil, "r1", order(Line{"B", 2, 250}, Line{"B", 2, 250}), c, now)
	if err != nil || res.Status != StatusRejected {
		t.Fatalf("got %+v %+v %v", res, ev, err)
	}
	if got := ev.(Rejected); got.Available != 1 || got.Requested != 2 {
		t.Fatalf("event %+v", got)
	}
	if c["B"].Levels.Available != 3 {
		t.Fatalf("stock moved: %+v", c["B"].Levels)
	}
}

func TestReserveRejectsBadInputWithoutPanicking(t *testing.T) {
	for _, o := range []Order{order(), order(Line{"A", 0, 100}), order(Line{"A", 1, -1})} {
		_, _, err := Reserve(nil, "r1", o, catalog(), now)
		var invalid *InvalidError
		if !errors.As(err, &invalid) || invalid.Field == "" {
			t.Errorf("Reserve(%+v) = %v, want InvalidError naming the field", o.Lines, err)
		}
	}
}

// reserved returns a catalog and a reservation of 4 A + 2 B in status s, with
// the catalog's levels as they are in that status.
func reservedIn(s Status) (*Reservation, Catalog) {
	c := Catalog{
		"A": item("A", 100, "EUR", Levels{Available: 6, Reserved: 4, Added: 10}),
		"B": item("B", 250, "EUR", Levels{Available: 1, Reserved: 2, Added: 3}),
	}
	switch s {
	case StatusDeducted:
		c["A"].Levels = Levels{SKU: "A", Available: 6, Sold: 4, Added: 10}
		c["B"].Levels = Levels{SKU: "B", Available: 1, Sold: 2, Added: 3}
	case StatusReleased, StatusRejected, StatusCancelled:
		c["A"].Levels = Levels{SKU: "A", Available: 10, Added: 10}
		c["B"].Levels = Levels{SKU: "B", Available: 3, Added: 3}
	case StatusRestored:
		c["A"].Levels = Levels{SKU: "A", Available: 10, Sold: 4, Restored: 4, Added: 10}
		c["B"].Levels = Levels{SKU: "B", Available: 3, Sold: 2, Restored: 2, Added: 3}
	}
	r := &Reservation{OrderID: "o1", ReservationID: "r1", Status: s, Lines: []Line{{"A", 4, 100}, {"B", 2, 250}},
		ShippingAddress: Address{Name: "N", Line1: "L", City: "C", CountryCode: "DE"}, CreatedAt: now, UpdatedAt: now}
	if s == StatusCancelled {
		r.Lines = nil
	}
	return r, c
}

func TestTransitions(t *testing.T) {
	later := now.Add(time.Minute)
	type transition func(*Reservation, Catalog, time.Time) (Event, error)
	var (
		paid      transition = (*Reservation).PaymentProcessed
		payFailed transition = (*Reservation).PaymentFailed
		cancel    transition = (*Reservation).Cancel
		shipFail  transition = (*Reservation).ShipmentFailed
	)
	lines := []Line{{"A", 4, 100}, {"B", 2, 250}}
	tests := []struct {
		name   string
		from   Status
		do     transition
		to     Status // equal to from: a no-op
		event  Event
		levelA Levels
	}{
		{"payment processed deducts", StatusReserved, paid, StatusDeducted,
			Deducted{ReservationID: "r1", Lines: lines, ShippingAddress: Address{Name: "N", Line1: "L", City: "C", CountryCode: "DE"}},
			Levels{SKU: "A", Available: 6, Sold: 4, Added: 10}},
		{"payment failed releases", StatusReserved, payFailed, StatusReleased,
			Restored{ReservationID: "r1", Lines: lines, Reason: RestorePaymentFailed},
			Levels{SKU: "A", Available: 10, Added: 10}},
		{"cancel of a reservation releases", StatusReserved, cancel, StatusReleased,
			Restored{ReservationID: "r1", Lines: lines, Reason: RestoreOrderCancelled},
			Levels{SKU: "A", Available: 10, Added: 10}},
		{"cancel of a deduction restores", StatusDeducted, cancel, StatusRestored,
			Restored{ReservationID: "r1", Lines: lines, Reason: RestoreOrderCancelled, WasDeducted: true},
			Levels{SKU: "A", Available: 10, Sold: 4, Restored: 4, Added: 10}},
		{"shipment failed restores", StatusDeducted, shipFail, StatusRestored,
			Restored{ReservationID: "r1", Lines: lines, Reason: RestoreShipmentFailed, WasDeducted: true},
			Levels{SKU: "A", Available: 10, Sold: 4, Restored: 4, Added: 10}},

		// Every other combination is a no-op.
		{"payment processed twice", StatusDeducted, paid, StatusDeducted, nil, Levels{}},
		{"payment processed after release (late, after cancel)", StatusReleased, paid, StatusReleased, nil, Levels{}},
		{"payment processed after restore", StatusRestored, paid, StatusRestored, nil, Levels{}},
		{"payment processed on a rejection", StatusRejected, paid, StatusRejected, nil, Levels{}},
		{"payment processed on a tombstone", StatusCancelled, paid, StatusCancelled, nil, Levels{}},
		{"payment failed after deduction", StatusDeducted, payFailed, StatusDeducted, nil, Levels{}},
		{"payment failed after cancel", StatusReleased, payFailed, StatusReleased, nil, Levels{}},
		{"payment failed on a rejection", StatusRejected, payFailed, StatusRejected, nil, Levels{}},
		{"payment failed after restore", StatusRestored, payFailed, StatusRestored, nil, Levels{}},
		{"cancel after release", StatusReleased, cancel, StatusReleased, nil, Levels{}},
		{"cancel after restore", StatusRestored, cancel, StatusRestored, nil, Levels{}},
		{"cancel of a rejection", StatusRejected, cancel, StatusRejected, nil, Levels{}},
		{"cancel of a tombstone", StatusCancelled, cancel, StatusCancelled, nil, Levels{}},
		{"shipment failed on a reservation", StatusReserved, shipFail, StatusReserved, nil, Levels{}},
		{"shipment failed after cancel restored", StatusRestored, shipFail, StatusRestored, nil, Levels{}},
		{"shipment failed after release", StatusReleased, shipFail, StatusReleased, nil, Levels{}},
		{"shipment failed on a tombstone", StatusCancelled, shipFail, StatusCancelled, nil, Levels{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, c := reservedIn(tt.from)
			before := levels(c)
			ev, err := tt.do(r, c, later)
			if err != nil {
				t.Fatal(err)
			}
			assertBalanced(t, c)
			if r.Status != tt.to {
				t.Fatalf("status %s, want %s", r.Status, tt.to)
			}
			if !reflect.DeepEqual(ev, tt.event) {
				t.Fatalf("event %+v, want %+v", ev, tt.event)
			}
			if tt.event == nil {
				if !reflect.DeepEqual(levels(c), before) || !r.UpdatedAt.Equal(now) {
					t.Fatalf("a no-op changed state: %+v %v", levels(c), r.UpdatedAt)
				}
				return
			}
			if !r.UpdatedAt.Equal(later) {
				t.Errorf("updated at %v", r.UpdatedAt)
			}
			if c["A"].Levels != tt.levelA {
				t.Fatalf("A %+v, want %+v", c["A"].Levels, tt.levelA)
			}
		})
	}
}

func TestMovesThatWouldBreakTheInvariantFailWholly(t *testing.T) {
	r, c := reservedIn(StatusReserved)
	c["B"].Levels.Reserved = 1 // corrupt: less reserved than the reservation holds
	c["B"].Levels.Available = 2
	before := levels(c)
	if _, err := r.PaymentProcessed(c, now); !errors.Is(err, ErrInvariant) {
		t.Fatalf("err %v, want ErrInvariant", err)
	}
	if !reflect.DeepEqual(levels(c), before) || r.Status != StatusReserved {
		t.Fatalf("partial move: %+v %s", levels(c), r.Status)
	}
	delete(c, "A")
	if _, err := r.PaymentFailed(c, now); !errors.Is(err, ErrInvariant) {
		t.Fatalf("missing stock row: err %v", err)
	}
}

func TestLevelsAddAndBalance(t *testing.T) {
	l := Levels{SKU: "A"}
	if err := l.Add(5); err != nil || l.Available != 5 || l.Added != 5 || !l.Balanced() {
		t.Fatalf("%+v %v", l, err)
	}
	var invalid *InvalidError
	if err := l.Add(0); !errors.As(err, &invalid) || invalid.Field != "quantity" {
		t.Fatalf("Add(0) = %v", err)
	}
	for _, bad := range []Levels{{Available: -1, Added: -1}, {Added: 1}, {Reserved: -1, Available: 1}} {
		if bad.Balanced() {
			t.Errorf("%+v reported balanced", bad)
		}
	}
}
