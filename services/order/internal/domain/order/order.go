// Package order is the order aggregate: an order's status machine
// (PENDING → COMPLETED | CANCELLED; terminal states never change) and its saga
// step history. Plain Go: no SQL, Kafka or protobuf.
//
// Transitions return the event types the order must emit (none when nothing
// changed); the use case turns them into envelopes, records each as a step
// (RecordEmitted) and stores everything in one transaction.
package order

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/sagasuite/sagasuite/libs/currency"
	"github.com/sagasuite/sagasuite/libs/fielderr"
)

// Status is where an order stands in its saga.
type Status string

// The statuses; COMPLETED and CANCELLED are terminal.
const (
	StatusPending   Status = "PENDING"
	StatusCompleted Status = "COMPLETED"
	StatusCancelled Status = "CANCELLED"
)

// Terminal reports whether the saga has ended for the order.
func (s Status) Terminal() bool { return s == StatusCompleted || s == StatusCancelled }

// CancelReason says why an order was cancelled.
type CancelReason string

// The cancel reasons (the wire's CancelReason without its prefix).
const (
	ReasonOutOfStock        CancelReason = "OUT_OF_STOCK"
	ReasonPaymentFailed     CancelReason = "PAYMENT_FAILED"
	ReasonShipmentFailed    CancelReason = "SHIPMENT_FAILED"
	ReasonCustomerRequested CancelReason = "CUSTOMER_REQUESTED"
	ReasonTimeout           CancelReason = "TIMEOUT"
)

// EventType is a saga event's wire name, e.g. "STOCK_RESERVED".
type EventType string

// The event types the order emits or reacts to; every other type is only
// recorded in the step history.
const (
	EventOrderCreated    EventType = "ORDER_CREATED"
	EventOrderCompleted  EventType = "ORDER_COMPLETED"
	EventOrderCancelled  EventType = "ORDER_CANCELLED"
	EventOutOfStock      EventType = "OUT_OF_STOCK"
	EventPaymentFailed   EventType = "PAYMENT_FAILED"
	EventShipmentFailed  EventType = "SHIPMENT_FAILED"
	EventShipmentCreated EventType = "SHIPMENT_CREATED"
)

// Limits shared with the wire contract.
const (
	MaxLines        = 100
	MaxQuantity     = 10000
	MaxDetailLength = 1024 // characters of a step detail or cancel detail
)

// Errors the use cases decide on.
var (
	// ErrNotFound: no order with that id.
	ErrNotFound = errors.New("order not found")
	// ErrNotPending: the transition needs a PENDING order.
	ErrNotPending = errors.New("order is not pending")
	// ErrRequestIDReused: a request id already created an order for another
	// customer, or from a request with a different payload.
	ErrRequestIDReused = errors.New("request_id already used")
	// ErrInvalid is the class of InvalidError.
	ErrInvalid = fielderr.ErrInvalid
)

// NotFound is the error for an order id that names no order the caller may
// see. The store answers a missing id with it and the API a foreign one, so
// the two read the same and ids cannot be probed.
func NotFound(id string) error { return fmt.Errorf("%w: %s", ErrNotFound, id) }

// InvalidError names the input field that is wrong, in the API's spelling
// ("lines[1].quantity"), so clients can point at it.
type InvalidError = fielderr.Error

// Invalid returns an *InvalidError.
func Invalid(field, format string, args ...any) error { return fielderr.New(field, format, args...) }

// Line is one product line: what, how many, at which unit price.
type Line struct {
	SKU            string
	Quantity       int32
	UnitPriceMinor int64
}

// Address is where the parcel goes.
type Address struct {
	Name, Line1, Line2, City, PostalCode, CountryCode string
}

// Step is one saga event recorded for the order.
type Step struct {
	EventType  EventType
	EventID    string
	OccurredAt time.Time
	Detail     string
}

// Order is one order and its saga.
type Order struct {
	ID         string
	CustomerID string
	RequestID  string // the client's idempotency key, if it gave one
	// RequestHash is the Fingerprint of the request that created the order
	// with RequestID: a retry must carry the same (nil without a key, and
	// for orders stored before it was kept).
	RequestHash     []byte
	Lines           []Line
	Currency        string
	TotalMinor      int64
	ShippingAddress Address
	PaymentToken    string
	Status          Status
	CancelReason    CancelReason // set when CANCELLED
	CancelDetail    string
	Deadline        time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
	Steps           []Step // oldest first
	// Version counts stored changes; watchers compare it to see one.
	Version int64
}

// Draft is what a customer asks for.
type Draft struct {
	ID              string
	CustomerID      string
	RequestID       string
	Lines           []Line
	Currency        string
	ShippingAddress Address
	PaymentToken    string
}

// Fingerprint is the SHA-256 of the draft's canonical encoding: every field
// the customer sends except the request id itself (customer, lines in their
// order, currency, address, payment token), each length-prefixed so no two
// drafts encode alike. It is computed on the domain's fields, not on the
// wire bytes, so gRPC, gRPC-Web and Connect clients, field order and
// unknown fields cannot make one request look like two.
func (d Draft) Fingerprint() []byte {
	h := sha256.New()
	put := func(s string) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	putInt := func(v int64) {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(v))
		h.Write(b[:])
	}
	put("sagasuite.order.CreateOrder/v1")
	put(d.CustomerID)
	putInt(int64(len(d.Lines)))
	for _, l := range d.Lines {
		put(l.SKU)
		putInt(int64(l.Quantity))
		putInt(l.UnitPriceMinor)
	}
	put(d.Currency)
	a := d.ShippingAddress
	for _, f := range []string{a.Name, a.Line1, a.Line2, a.City, a.PostalCode, a.CountryCode} {
		put(f)
	}
	put(d.PaymentToken)
	return h.Sum(nil)
}

// requestHash is the fingerprint kept with an order created under a
// request id; without one there is nothing to compare a retry with.
func requestHash(d Draft) []byte {
	if d.RequestID == "" {
		return nil
	}
	return d.Fingerprint()
}

// AnswersRetry reports whether the stored order o may answer a request by
// customerID with fingerprint hash that reused o's request id: only the very
// same request may. An order stored without a fingerprint is compared by
// customer alone.
func (o *Order) AnswersRetry(customerID string, hash []byte) error {
	return CheckRetry(o.RequestID, o.CustomerID, o.RequestHash, customerID, hash)
}

// CheckRetry is AnswersRetry on the stored customer and fingerprint alone.
func CheckRetry(requestID, storedCustomer string, storedHash []byte, customerID string, hash []byte) error {
	if storedCustomer != customerID {
		return fmt.Errorf("%w: request_id %s created an order for another customer", ErrRequestIDReused, requestID)
	}
	if len(storedHash) > 0 && !bytes.Equal(storedHash, hash) {
		return fmt.Errorf("%w: request_id %s was used for a different request (lines, currency, address or payment method differ); "+
			"use a new request_id for a new order", ErrRequestIDReused, requestID)
	}
	return nil
}

var (
	skuPattern     = regexp.MustCompile(`^[A-Z0-9][A-Z0-9_-]{1,63}$`)
	countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)
)

// New validates d and returns a PENDING order whose deadline is now + ttl.
// The caller records the ORDER_CREATED step (RecordEmitted) once it has the
// event's id.
func New(d Draft, now time.Time, ttl time.Duration) (*Order, error) {
	if d.ID == "" {
		return nil, Invalid("order_id", "is required")
	}
	if d.CustomerID == "" {
		return nil, Invalid("customer_id", "is required")
	}
	total, err := validateLines(d.Lines)
	if err != nil {
		return nil, err
	}
	if !currency.Valid(d.Currency) {
		return nil, Invalid("currency", "must be an active ISO 4217 currency code like EUR, got %q", d.Currency)
	}
	if err := validateAddress(d.ShippingAddress); err != nil {
		return nil, err
	}
	if d.PaymentToken == "" || len(d.PaymentToken) > 256 {
		return nil, Invalid("payment_method_token", "must have 1 to 256 characters")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("order deadline must be positive, got %s", ttl)
	}
	now = now.UTC()
	return &Order{
		ID:              d.ID,
		CustomerID:      d.CustomerID,
		RequestID:       d.RequestID,
		RequestHash:     requestHash(d),
		Lines:           append([]Line(nil), d.Lines...),
		Currency:        d.Currency,
		TotalMinor:      total,
		ShippingAddress: d.ShippingAddress,
		PaymentToken:    d.PaymentToken,
		Status:          StatusPending,
		Deadline:        now.Add(ttl),
		CreatedAt:       now,
		UpdatedAt:       now,
	}, nil
}

// validateLines checks the lines and returns Σ quantity × unit price, refusing
// a total that does not fit int64.
func validateLines(lines []Line) (int64, error) {
	if len(lines) == 0 || len(lines) > MaxLines {
		return 0, Invalid("lines", "must have 1 to %d lines, got %d", MaxLines, len(lines))
	}
	seen := make(map[string]bool, len(lines))
	var total int64
	for i, l := range lines {
		field := fmt.Sprintf("lines[%d]", i)
		switch {
		case !skuPattern.MatchString(l.SKU):
			return 0, Invalid(field+".sku", "must match %s, got %q", skuPattern, l.SKU)
		case seen[l.SKU]:
			return 0, Invalid(field+".sku", "%s appears in more than one line", l.SKU)
		case l.Quantity <= 0 || l.Quantity > MaxQuantity:
			return 0, Invalid(field+".quantity", "must be 1 to %d, got %d", MaxQuantity, l.Quantity)
		case l.UnitPriceMinor < 0:
			return 0, Invalid(field+".unit_price_minor", "must not be negative, got %d", l.UnitPriceMinor)
		}
		seen[l.SKU] = true
		if l.UnitPriceMinor > (math.MaxInt64-total)/int64(l.Quantity) {
			return 0, Invalid(field+".unit_price_minor", "makes the order total overflow")
		}
		total += int64(l.Quantity) * l.UnitPriceMinor
	}
	return total, nil
}

func validateAddress(a Address) error {
	const f = "shipping_address."
	switch {
	case a.Name == "" || utf8.RuneCountInString(a.Name) > 200:
		return Invalid(f+"name", "must have 1 to 200 characters")
	case a.Line1 == "" || utf8.RuneCountInString(a.Line1) > 200:
		return Invalid(f+"line1", "must have 1 to 200 characters")
	case utf8.RuneCountInString(a.Line2) > 200:
		return Invalid(f+"line2", "must have at most 200 characters")
	case a.City == "" || utf8.RuneCountInString(a.City) > 100:
		return Invalid(f+"city", "must have 1 to 100 characters")
	case utf8.RuneCountInString(a.PostalCode) > 20:
		return Invalid(f+"postal_code", "must have at most 20 characters")
	case !countryPattern.MatchString(a.CountryCode):
		return Invalid(f+"country_code", "must be an ISO 3166-1 alpha-2 code like DE, got %q", a.CountryCode)
	}
	return nil
}

// CancelByCustomer cancels a PENDING order for the customer. On an order that
// is already CANCELLED it changes nothing and emits nothing (a retried call);
// on a COMPLETED one it fails with ErrNotPending.
func (o *Order) CancelByCustomer(detail string, now time.Time) ([]EventType, error) {
	switch o.Status {
	case StatusCancelled:
		return nil, nil
	case StatusPending:
		return o.cancel(ReasonCustomerRequested, detail, now), nil
	default:
		return nil, fmt.Errorf("%w: order %s is %s", ErrNotPending, o.ID, o.Status)
	}
}

// Expire cancels a PENDING order whose deadline has passed (TIMEOUT). Anything
// else is left alone: a terminal outcome may have won the race to the row.
func (o *Order) Expire(now time.Time) []EventType {
	if o.Status != StatusPending || now.Before(o.Deadline) {
		return nil
	}
	return o.cancel(ReasonTimeout, "no outcome before the deadline "+o.Deadline.UTC().Format(time.RFC3339), now)
}

// Observe records a saga event about the order and applies its rule:
// OUT_OF_STOCK, PAYMENT_FAILED and SHIPMENT_FAILED cancel a PENDING order
// with that reason, SHIPMENT_CREATED completes it. On a terminal order the
// event is only recorded: late work stays visible, and the services that did
// it compensate it on their own (they have seen ORDER_CANCELLED).
func (o *Order) Observe(s Step, now time.Time) []EventType {
	o.addStep(s, now)
	if o.Status != StatusPending {
		return nil
	}
	switch s.EventType {
	case EventOutOfStock:
		return o.cancel(ReasonOutOfStock, s.Detail, now)
	case EventPaymentFailed:
		return o.cancel(ReasonPaymentFailed, s.Detail, now)
	case EventShipmentFailed:
		return o.cancel(ReasonShipmentFailed, s.Detail, now)
	case EventShipmentCreated:
		o.Status = StatusCompleted
		o.UpdatedAt = now.UTC()
		return []EventType{EventOrderCompleted}
	}
	return nil
}

// RecordEmitted adds an event the order itself emitted to its step history.
func (o *Order) RecordEmitted(s Step, now time.Time) { o.addStep(s, now) }

// HasStep reports whether the event id is already in the history.
func (o *Order) HasStep(eventID string) bool {
	for _, s := range o.Steps {
		if s.EventID == eventID {
			return true
		}
	}
	return false
}

func (o *Order) cancel(reason CancelReason, detail string, now time.Time) []EventType {
	o.Status = StatusCancelled
	o.CancelReason = reason
	o.CancelDetail = Truncate(detail, MaxDetailLength)
	o.UpdatedAt = now.UTC()
	return []EventType{EventOrderCancelled}
}

func (o *Order) addStep(s Step, now time.Time) {
	s.OccurredAt = s.OccurredAt.UTC()
	s.Detail = Truncate(s.Detail, MaxDetailLength)
	o.Steps = append(o.Steps, s)
	o.UpdatedAt = now.UTC()
}

// Truncate cuts s to at most n characters (not bytes).
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}
