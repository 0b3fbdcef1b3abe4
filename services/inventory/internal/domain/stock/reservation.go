package stock

import (
	"fmt"
	"time"
)

// Status is where a reservation stands.
//
//	RESERVED → DEDUCTED → RESTORED
//	RESERVED → RELEASED
//	REJECTED                      (ORDER_CREATED could not be reserved)
//	CANCELLED                     (ORDER_CANCELLED before any reservation: a tombstone)
type Status string

// Reservation statuses.
const (
	StatusReserved  Status = "RESERVED"
	StatusDeducted  Status = "DEDUCTED"
	StatusReleased  Status = "RELEASED"
	StatusRestored  Status = "RESTORED"
	StatusRejected  Status = "REJECTED"
	StatusCancelled Status = "CANCELLED"
)

// Line is one ordered SKU: how many and at what unit price.
type Line struct {
	SKU            string
	Quantity       int64
	UnitPriceMinor int64
}

// Address is where the parcel goes; inventory only carries it forward.
type Address struct {
	Name        string
	Line1       string
	Line2       string
	City        string
	PostalCode  string
	CountryCode string
}

// Order is what ORDER_CREATED asks inventory to reserve, and the data the
// later steps need (carried in STOCK_RESERVED and INVENTORY_UPDATED).
type Order struct {
	OrderID         string
	CustomerID      string
	Lines           []Line
	Total           Money
	PaymentToken    string
	ShippingAddress Address
}

// Reservation is inventory's record of one order.
type Reservation struct {
	OrderID         string
	ReservationID   string
	CustomerID      string
	Status          Status
	Lines           []Line
	Total           Money
	PaymentToken    string
	ShippingAddress Address
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Item is a catalog entry with its stock levels, locked for one decision.
type Item struct {
	Product Product
	Levels  Levels
}

// Catalog holds the items a decision may touch, by SKU. SKUs missing from it
// are not in the catalog.
type Catalog map[string]*Item

// RejectReason says why an order could not be reserved.
type RejectReason int

// Reject reasons, in the order lines are checked.
const (
	RejectUnknownSKU RejectReason = iota + 1
	RejectCurrencyMismatch
	RejectPriceMismatch
	RejectInsufficientStock
)

// RestoreReason says which event put units back.
type RestoreReason int

// Restore reasons.
const (
	RestorePaymentFailed RestoreReason = iota + 1
	RestoreOrderCancelled
	RestoreShipmentFailed
)

// Event is what a transition emits; nil means nothing happened.
type Event interface{ stockEvent() }

// Reserved: every line is held (STOCK_RESERVED).
type Reserved struct {
	ReservationID   string
	Lines           []Line
	Total           Money
	PaymentToken    string
	ShippingAddress Address
}

// Rejected: nothing is held; the first failing line (OUT_OF_STOCK).
type Rejected struct {
	SKU       string
	Requested int64
	Available int64
	Reason    RejectReason
}

// Deducted: reserved units became sold (INVENTORY_UPDATED).
type Deducted struct {
	ReservationID   string
	Lines           []Line
	ShippingAddress Address
}

// Restored: reserved or sold units are available again (STOCK_RESTORED).
type Restored struct {
	ReservationID string
	Lines         []Line
	Reason        RestoreReason
	WasDeducted   bool
}

func (Reserved) stockEvent() {}
func (Rejected) stockEvent() {}
func (Deducted) stockEvent() {}
func (Restored) stockEvent() {}

// Reserve decides ORDER_CREATED: every line is reserved, or none. existing is
// the order's reservation so far (nil: none); when there is one — a reservation,
// a rejection or a cancellation tombstone — the order was decided before and
// nothing happens (nil reservation, nil event). Otherwise it returns the new
// reservation (RESERVED or REJECTED) to save and its event; catalog's levels
// are updated in place only when everything is reserved.
func Reserve(existing *Reservation, reservationID string, order Order, catalog Catalog, now time.Time) (*Reservation, Event, error) {
	if existing != nil {
		return nil, nil, nil
	}
	if err := order.validate(); err != nil {
		return nil, nil, err
	}
	res := &Reservation{
		OrderID: order.OrderID, ReservationID: reservationID, CustomerID: order.CustomerID,
		Lines: append([]Line(nil), order.Lines...), Total: order.Total, PaymentToken: order.PaymentToken,
		ShippingAddress: order.ShippingAddress, CreatedAt: now, UpdatedAt: now,
	}
	if rejected := firstFailingLine(order, catalog); rejected != nil {
		res.Status = StatusRejected
		return res, *rejected, nil
	}
	for _, line := range order.Lines {
		if err := catalog[line.SKU].Levels.reserve(line.Quantity); err != nil {
			return nil, nil, err
		}
	}
	res.Status = StatusReserved
	return res, Reserved{
		ReservationID: reservationID, Lines: res.Lines, Total: res.Total,
		PaymentToken: res.PaymentToken, ShippingAddress: res.ShippingAddress,
	}, nil
}

func (o Order) validate() error {
	if len(o.Lines) == 0 {
		return &InvalidError{Field: "lines", Reason: "at least one line is required"}
	}
	for i, line := range o.Lines {
		if line.Quantity <= 0 {
			return &InvalidError{Field: fmt.Sprintf("lines[%d].quantity", i), Reason: "must be positive"}
		}
		if line.UnitPriceMinor < 0 {
			return &InvalidError{Field: fmt.Sprintf("lines[%d].unit_price_minor", i), Reason: "must not be negative"}
		}
	}
	return nil
}

// firstFailingLine checks the lines in order against the catalog, counting
// units already claimed by earlier lines of the same SKU, and returns the
// first refusal, or nil when every line can be reserved.
func firstFailingLine(order Order, catalog Catalog) *Rejected {
	claimed := map[string]int64{}
	for _, line := range order.Lines {
		item, ok := catalog[line.SKU]
		switch {
		case !ok:
			return &Rejected{SKU: line.SKU, Requested: line.Quantity, Reason: RejectUnknownSKU}
		case item.Product.UnitPrice.Currency != order.Total.Currency:
			return &Rejected{SKU: line.SKU, Requested: line.Quantity, Available: item.Levels.Available, Reason: RejectCurrencyMismatch}
		case item.Product.UnitPrice.AmountMinor != line.UnitPriceMinor:
			return &Rejected{SKU: line.SKU, Requested: line.Quantity, Available: item.Levels.Available, Reason: RejectPriceMismatch}
		}
		free := item.Levels.Available - claimed[line.SKU]
		if free < line.Quantity {
			return &Rejected{SKU: line.SKU, Requested: line.Quantity, Available: max(free, 0), Reason: RejectInsufficientStock}
		}
		claimed[line.SKU] += line.Quantity
	}
	return nil
}

// Tombstone decides ORDER_CANCELLED for an order with no reservation yet: a
// CANCELLED record, so a late ORDER_CREATED reserves nothing.
func Tombstone(orderID, customerID string, now time.Time) *Reservation {
	return &Reservation{OrderID: orderID, CustomerID: customerID, Status: StatusCancelled, CreatedAt: now, UpdatedAt: now}
}

// PaymentProcessed: RESERVED → DEDUCTED (reserved → sold), INVENTORY_UPDATED.
// In any other status nothing happens.
func (r *Reservation) PaymentProcessed(catalog Catalog, now time.Time) (Event, error) {
	if r.Status != StatusReserved {
		return nil, nil
	}
	if err := r.move(catalog, (*Levels).deduct); err != nil {
		return nil, err
	}
	r.transition(StatusDeducted, now)
	return Deducted{ReservationID: r.ReservationID, Lines: r.Lines, ShippingAddress: r.ShippingAddress}, nil
}

// PaymentFailed: RESERVED → RELEASED (reserved → available), STOCK_RESTORED.
func (r *Reservation) PaymentFailed(catalog Catalog, now time.Time) (Event, error) {
	if r.Status != StatusReserved {
		return nil, nil
	}
	return r.release(catalog, RestorePaymentFailed, now)
}

// Cancel: RESERVED → RELEASED, DEDUCTED → RESTORED, each with STOCK_RESTORED;
// every other status has nothing to give back.
func (r *Reservation) Cancel(catalog Catalog, now time.Time) (Event, error) {
	switch r.Status {
	case StatusReserved:
		return r.release(catalog, RestoreOrderCancelled, now)
	case StatusDeducted:
		return r.restore(catalog, RestoreOrderCancelled, now)
	}
	return nil, nil
}

// ShipmentFailed: DEDUCTED → RESTORED (sold units back to available), STOCK_RESTORED.
func (r *Reservation) ShipmentFailed(catalog Catalog, now time.Time) (Event, error) {
	if r.Status != StatusDeducted {
		return nil, nil
	}
	return r.restore(catalog, RestoreShipmentFailed, now)
}

func (r *Reservation) release(catalog Catalog, reason RestoreReason, now time.Time) (Event, error) {
	if err := r.move(catalog, (*Levels).release); err != nil {
		return nil, err
	}
	r.transition(StatusReleased, now)
	return Restored{ReservationID: r.ReservationID, Lines: r.Lines, Reason: reason, WasDeducted: false}, nil
}

func (r *Reservation) restore(catalog Catalog, reason RestoreReason, now time.Time) (Event, error) {
	if err := r.move(catalog, (*Levels).restore); err != nil {
		return nil, err
	}
	r.transition(StatusRestored, now)
	return Restored{ReservationID: r.ReservationID, Lines: r.Lines, Reason: reason, WasDeducted: true}, nil
}

// move applies one unit move to every line, all or nothing.
func (r *Reservation) move(catalog Catalog, apply func(*Levels, int64) error) error {
	moved := make(map[string]Levels, len(r.Lines))
	for _, line := range r.Lines {
		item, ok := catalog[line.SKU]
		if !ok {
			return fmt.Errorf("%w: reservation %s holds %s, which has no stock row", ErrInvariant, r.OrderID, line.SKU)
		}
		levels, seen := moved[line.SKU]
		if !seen {
			levels = item.Levels
		}
		if err := apply(&levels, line.Quantity); err != nil {
			return fmt.Errorf("order %s: %w", r.OrderID, err)
		}
		moved[line.SKU] = levels
	}
	for sku, levels := range moved {
		catalog[sku].Levels = levels
	}
	return nil
}

func (r *Reservation) transition(to Status, now time.Time) {
	r.Status = to
	r.UpdatedAt = now
}

// SKUs lists the reservation's SKUs (the rows its transitions touch).
func (r *Reservation) SKUs() []string {
	skus := make([]string, len(r.Lines))
	for i, line := range r.Lines {
		skus[i] = line.SKU
	}
	return skus
}
