// Package stock is the inventory domain: products, per-SKU stock levels and the
// one reservation each order gets, with the saga's transitions as methods. It
// is plain Go — no SQL, Kafka or protobuf — so every rule is table-tested here.
//
// Stock levels keep one invariant at all times:
//
//	added = available + reserved + sold − restored, available ≥ 0, reserved ≥ 0
//
// and every method that moves units keeps it.
package stock

import (
	"errors"
	"fmt"
	"time"

	"github.com/sagasuite/sagasuite/libs/fielderr"
)

// Errors the use cases decide on; ports map them to gRPC codes.
var (
	// ErrProductNotFound: the SKU is not in the catalog.
	ErrProductNotFound = errors.New("product not found")
	// ErrRequestConflict: an idempotency key was reused for a different request.
	ErrRequestConflict = errors.New("request id already used for a different request")
	// ErrInvariant: a move would break the stock invariant (a bug or corrupt data, never user input).
	ErrInvariant = errors.New("stock invariant violated")
)

// InvalidError is bad input, naming the field at fault.
type InvalidError = fielderr.Error

// Money is an amount in minor units of a currency (ISO 4217).
type Money struct {
	AmountMinor int64
	Currency    string
}

// Product is one catalog entry.
type Product struct {
	SKU       string
	Name      string
	UnitPrice Money
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Levels are one SKU's unit counts.
type Levels struct {
	SKU       string
	Available int64 // free to reserve
	Reserved  int64 // held by reservations not yet paid
	Sold      int64 // ever deducted for paid orders (gross)
	Added     int64 // ever received through AddStock
	Restored  int64 // deducted units put back
	UpdatedAt time.Time
}

// Balanced reports whether the invariant holds.
func (l Levels) Balanced() bool {
	return l.Available >= 0 && l.Reserved >= 0 && l.Sold >= 0 && l.Added >= 0 && l.Restored >= 0 &&
		l.Added == l.Available+l.Reserved+l.Sold-l.Restored
}

// Add receives quantity new units.
func (l *Levels) Add(quantity int64) error {
	if quantity <= 0 {
		return &InvalidError{Field: "quantity", Reason: "must be positive"}
	}
	l.Available += quantity
	l.Added += quantity
	return nil
}

// CanReserve reports whether quantity units are free.
func (l Levels) CanReserve(quantity int64) bool { return quantity > 0 && l.Available >= quantity }

// reserve moves units available → reserved.
func (l *Levels) reserve(quantity int64) error {
	if !l.CanReserve(quantity) {
		return fmt.Errorf("%w: reserve %d of %s with %d available", ErrInvariant, quantity, l.SKU, l.Available)
	}
	l.Available -= quantity
	l.Reserved += quantity
	return nil
}

// release moves units reserved → available.
func (l *Levels) release(quantity int64) error { return l.unreserve("release", quantity, &l.Available) }

// deduct moves units reserved → sold.
func (l *Levels) deduct(quantity int64) error { return l.unreserve("deduct", quantity, &l.Sold) }

// unreserve moves quantity units out of reserved into to.
func (l *Levels) unreserve(verb string, quantity int64, to *int64) error {
	if l.Reserved < quantity {
		return fmt.Errorf("%w: %s %d of %s with %d reserved", ErrInvariant, verb, quantity, l.SKU, l.Reserved)
	}
	l.Reserved -= quantity
	*to += quantity
	return nil
}

// restore puts sold units back: available += q, restored += q.
func (l *Levels) restore(quantity int64) error {
	if l.Sold-l.Restored < quantity {
		return fmt.Errorf("%w: restore %d of %s with %d sold and %d restored", ErrInvariant, quantity, l.SKU, l.Sold, l.Restored)
	}
	l.Available += quantity
	l.Restored += quantity
	return nil
}
