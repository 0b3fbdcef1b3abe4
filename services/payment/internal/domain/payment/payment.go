// Package payment is the payment aggregate: one record per order, and the
// saga's rules for it as pure transitions. It knows nothing of SQL, Kafka or
// protobuf; the money moves through functions the caller passes in (the
// gateway), so every decision — including "do not call the gateway at all" —
// is made and tested here.
//
//	(none) ─STOCK_RESERVED─→ CAPTURED ─ORDER_CANCELLED / SHIPMENT_FAILED─→ REFUNDED
//	(none) ─STOCK_RESERVED─→ FAILED
//	(none) ─ORDER_CANCELLED─→ CANCELLED  (a tombstone: a later STOCK_RESERVED charges nothing)
//
// Every other event, and every event on a record that has decided already, is
// a no-op: a refund happens at most once, a charge at most once per order.
package payment

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/sagasuite/sagasuite/libs/fielderr"
)

// Status is where an order's payment stands.
type Status string

// Payment statuses.
const (
	StatusCaptured  Status = "CAPTURED"
	StatusFailed    Status = "FAILED"
	StatusRefunded  Status = "REFUNDED"
	StatusCancelled Status = "CANCELLED" // the order was cancelled before any charge
)

// FailureReason says why a charge did not happen.
type FailureReason string

// Failure reasons (the contract's PaymentFailureReason values).
const (
	FailureDeclined             FailureReason = "DECLINED"
	FailureInsufficientFunds    FailureReason = "INSUFFICIENT_FUNDS"
	FailureInvalidPaymentMethod FailureReason = "INVALID_PAYMENT_METHOD"
	FailureProcessorUnavailable FailureReason = "PROCESSOR_UNAVAILABLE"
)

// RefundReason says which event made payment pay the money back.
type RefundReason string

// Refund reasons.
const (
	RefundShipmentFailed RefundReason = "SHIPMENT_FAILED"
	RefundOrderCancelled RefundReason = "ORDER_CANCELLED"
)

var (
	// ErrInvalid marks input that can never be applied: a malformed command
	// or query. InvalidError names the offending field.
	ErrInvalid = fielderr.ErrInvalid
	// ErrNotFound: the order has no payment (none tried yet, or the order
	// was cancelled before any charge).
	ErrNotFound = errors.New("payment not found")
)

// InvalidError is an ErrInvalid naming the field at fault.
type InvalidError = fielderr.Error

// Invalid returns an *InvalidError for field.
func Invalid(field, format string, args ...any) error { return fielderr.New(field, format, args...) }

// Money is an amount in the currency's minor unit.
type Money struct {
	AmountMinor int64
	Currency    string
}

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

func (m Money) validate() error {
	if m.AmountMinor < 0 {
		return fmt.Errorf("%w: amount %d is negative", ErrInvalid, m.AmountMinor)
	}
	if !currencyPattern.MatchString(m.Currency) {
		return fmt.Errorf("%w: currency %q is not an ISO 4217 code", ErrInvalid, m.Currency)
	}
	return nil
}

// Payment is one order's charge (or the tombstone of an order cancelled
// before any charge), with its refund once there is one.
type Payment struct {
	OrderID    string
	PaymentID  string // empty on a CANCELLED tombstone
	CustomerID string
	Amount     Money // charged, or attempted when FAILED; zero on a tombstone
	Status     Status
	// ChargeID is the gateway's reference of a captured charge.
	ChargeID string
	// Set when FAILED.
	FailureReason FailureReason
	DeclineCode   string
	FailureDetail string
	// CausationID is the event that created the record.
	CausationID string
	Refund      *Refund
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Refund is the money paid back for a captured payment (at most one).
type Refund struct {
	RefundID        string
	Amount          Money
	Reason          RefundReason
	GatewayRefundID string
	// CausationID is the event that triggered the refund.
	CausationID string
	CreatedAt   time.Time
}

// Decline is a gateway's "no": nothing was charged. It is an error so a
// gateway can return it from Charge; errors.As finds it.
type Decline struct {
	Reason FailureReason
	Code   string // the processor's decline code, e.g. "card_declined"
	Detail string
}

func (d *Decline) Error() string {
	return fmt.Sprintf("charge declined: %s (%s): %s", d.Reason, d.Code, d.Detail)
}

// ChargeRequest is what STOCK_RESERVED asks payment to charge.
type ChargeRequest struct {
	OrderID      string
	PaymentID    string // derived from the order id by the caller
	CustomerID   string
	Amount       Money
	PaymentToken string
	CausationID  string // the STOCK_RESERVED event
}

func (r ChargeRequest) validate() error {
	if r.OrderID == "" || r.PaymentID == "" || r.CustomerID == "" || r.CausationID == "" {
		return fmt.Errorf("%w: charge needs order, payment, customer and causation ids", ErrInvalid)
	}
	if r.PaymentToken == "" {
		return fmt.Errorf("%w: charge for order %s has no payment token", ErrInvalid, r.OrderID)
	}
	return r.Amount.validate()
}

// ChargeFunc charges the request through the gateway and returns the
// gateway's charge id, a *Decline, or another error (retry later).
type ChargeFunc func(ChargeRequest) (chargeID string, err error)

// RefundFunc pays a captured payment back in full and returns the gateway's
// refund id, or an error (retry later).
type RefundFunc func(p *Payment, refundID string) (gatewayRefundID string, err error)

// Event is what a transition emits; nil means nothing happened.
type Event interface{ paymentEvent() }

// Processed: the charge was captured (PAYMENT_PROCESSED).
type Processed struct {
	PaymentID string
	Amount    Money
}

// Failed: nothing was charged (PAYMENT_FAILED).
type Failed struct {
	Reason      FailureReason
	DeclineCode string
	Detail      string
}

// Refunded: the charge was paid back (PAYMENT_REFUNDED).
type Refunded struct {
	PaymentID string
	RefundID  string
	Amount    Money
	Reason    RefundReason
}

func (Processed) paymentEvent() {}
func (Failed) paymentEvent()    {}
func (Refunded) paymentEvent()  {}

// Charge decides STOCK_RESERVED. existing is the order's record (nil: none).
// When there is one — a charge decided before, or the tombstone of an order
// cancelled first — nothing happens and charge is not called. Otherwise
// charge runs once and the result is a new CAPTURED or FAILED payment with
// its event. An error from charge other than a *Decline is returned as is
// (nothing decided; the caller retries).
func Charge(existing *Payment, req ChargeRequest, charge ChargeFunc, now time.Time) (*Payment, Event, error) {
	if existing != nil {
		return nil, nil, nil
	}
	if err := req.validate(); err != nil {
		return nil, nil, err
	}
	p := &Payment{
		OrderID: req.OrderID, PaymentID: req.PaymentID, CustomerID: req.CustomerID,
		Amount: req.Amount, CausationID: req.CausationID, CreatedAt: now, UpdatedAt: now,
	}
	chargeID, err := charge(req)
	var decline *Decline
	switch {
	case errors.As(err, &decline):
		if decline.Reason == "" {
			return nil, nil, fmt.Errorf("charge order %s: decline without a reason", req.OrderID)
		}
		p.Status = StatusFailed
		p.FailureReason, p.DeclineCode, p.FailureDetail = decline.Reason, decline.Code, decline.Detail
		return p, Failed{Reason: decline.Reason, DeclineCode: decline.Code, Detail: decline.Detail}, nil
	case err != nil:
		return nil, nil, fmt.Errorf("charge order %s: %w", req.OrderID, err)
	case chargeID == "":
		return nil, nil, fmt.Errorf("charge order %s: gateway approved without a charge id", req.OrderID)
	}
	p.Status = StatusCaptured
	p.ChargeID = chargeID
	return p, Processed{PaymentID: p.PaymentID, Amount: p.Amount}, nil
}

// Cancel decides ORDER_CANCELLED. With no record yet it returns a CANCELLED
// tombstone to save (no event), so a STOCK_RESERVED that arrives later charges
// nothing. A CAPTURED payment is refunded (see refundOnce). Anything else has
// nothing to undo.
func Cancel(existing *Payment, orderID, customerID, causationID, refundID string, refund RefundFunc, now time.Time) (*Payment, Event, error) {
	if existing == nil {
		if orderID == "" || customerID == "" || causationID == "" {
			return nil, nil, fmt.Errorf("%w: cancel needs order, customer and causation ids", ErrInvalid)
		}
		return &Payment{
			OrderID: orderID, CustomerID: customerID, Status: StatusCancelled,
			CausationID: causationID, CreatedAt: now, UpdatedAt: now,
		}, nil, nil
	}
	return refundOnce(existing, RefundOrderCancelled, causationID, refundID, refund, now)
}

// ShipmentFailed decides SHIPMENT_FAILED: a CAPTURED payment is refunded
// (see refundOnce); anything else — including no record, which the saga's
// order makes impossible — has nothing to undo.
func ShipmentFailed(existing *Payment, causationID, refundID string, refund RefundFunc, now time.Time) (*Payment, Event, error) {
	if existing == nil {
		return nil, nil, nil
	}
	return refundOnce(existing, RefundShipmentFailed, causationID, refundID, refund, now)
}

// refundOnce pays a CAPTURED payment back in full and moves it to REFUNDED;
// on any other status (already REFUNDED, FAILED, CANCELLED) it does nothing
// and refund is not called. It returns the changed payment to save.
func refundOnce(p *Payment, reason RefundReason, causationID, refundID string, refund RefundFunc, now time.Time) (*Payment, Event, error) {
	if p.Status != StatusCaptured {
		return nil, nil, nil
	}
	if causationID == "" || refundID == "" {
		return nil, nil, fmt.Errorf("%w: refund needs causation and refund ids", ErrInvalid)
	}
	gatewayRefundID, err := refund(p, refundID)
	if err != nil {
		return nil, nil, fmt.Errorf("refund order %s: %w", p.OrderID, err)
	}
	changed := *p
	changed.Status = StatusRefunded
	changed.UpdatedAt = now
	changed.Refund = &Refund{
		RefundID: refundID, Amount: p.Amount, Reason: reason, GatewayRefundID: gatewayRefundID,
		CausationID: causationID, CreatedAt: now,
	}
	return &changed, Refunded{PaymentID: p.PaymentID, RefundID: refundID, Amount: p.Amount, Reason: reason}, nil
}

// Visible reports whether the record is a payment the API shows: a
// CANCELLED tombstone is not (nothing was charged or tried).
func (p *Payment) Visible() bool { return p != nil && p.Status != StatusCancelled }
