// Package payment is the payment aggregate: one record per order, and the
// saga's rules for it as pure transitions. It knows nothing of SQL, Kafka,
// protobuf or the gateway: it decides which intent to record and what a
// gateway's answer means, so every decision — including "do not call the
// gateway at all" — is made and tested here.
//
// Money moves in three steps (intent → gateway call → outcome), so every
// gateway call has a committed intent before it and a recorded outcome after:
//
//	(none) ─STOCK_RESERVED─→ CHARGE_PENDING ─gateway─→ CAPTURED | FAILED
//	CHARGE_PENDING ─ORDER_CANCELLED─→ CHARGE_PENDING (+cancel noted) ─gateway─→ REFUND_PENDING | FAILED
//	CAPTURED ─ORDER_CANCELLED / SHIPMENT_FAILED─→ REFUND_PENDING ─gateway─→ REFUNDED
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
	// The intents: recorded and committed before the gateway is called, and
	// left by the call's recorded outcome (or by the sweeper after a crash).
	StatusChargePending Status = "CHARGE_PENDING"
	StatusRefundPending Status = "REFUND_PENDING"
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
	// PaymentToken is kept while CHARGE_PENDING (a retry needs it), then dropped.
	PaymentToken string
	// CancelCausationID is an ORDER_CANCELLED that came while CHARGE_PENDING:
	// a charge that then turns out captured is refunded for it.
	CancelCausationID string
	// PendingRefund is the refund intent while REFUND_PENDING.
	PendingRefund *Refund
	Refund        *Refund
	CreatedAt     time.Time
	UpdatedAt     time.Time
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

// BeginCharge decides STOCK_RESERVED: with no record yet it returns the
// charge intent to store (CHARGE_PENDING, holding the token until the
// gateway has answered); the caller calls the gateway only after the intent
// is committed. With a record — an intent or a charge decided before, or the
// tombstone of an order cancelled first — nothing happens.
func BeginCharge(existing *Payment, req ChargeRequest, now time.Time) (*Payment, error) {
	if existing != nil {
		return nil, nil
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	return &Payment{
		OrderID: req.OrderID, PaymentID: req.PaymentID, CustomerID: req.CustomerID, Amount: req.Amount,
		Status: StatusChargePending, PaymentToken: req.PaymentToken, CausationID: req.CausationID,
		CreatedAt: now, UpdatedAt: now,
	}, nil
}

// ChargeOutcome is what the gateway said about a charge: a charge id, or a
// decline.
type ChargeOutcome struct {
	ChargeID string
	Decline  *Decline
}

// RecordCharge stores the gateway's answer to a CHARGE_PENDING intent:
// CAPTURED with Processed, or FAILED with Failed. When the order was
// cancelled while the charge was pending, a captured charge goes on to
// REFUND_PENDING at once (Processed is still emitted: the money moved, and
// the refund's PAYMENT_REFUNDED follows). Any other status has decided
// already: nothing happens.
func RecordCharge(p *Payment, outcome ChargeOutcome, refundID string, now time.Time) (*Payment, Event, error) {
	if p == nil || p.Status != StatusChargePending {
		return nil, nil, nil
	}
	changed := *p
	changed.PaymentToken = "" // the token is needed no more
	changed.UpdatedAt = now
	if d := outcome.Decline; d != nil {
		if d.Reason == "" {
			return nil, nil, fmt.Errorf("charge order %s: decline without a reason", p.OrderID)
		}
		changed.Status = StatusFailed
		changed.FailureReason, changed.DeclineCode, changed.FailureDetail = d.Reason, d.Code, d.Detail
		return &changed, Failed{Reason: d.Reason, DeclineCode: d.Code, Detail: d.Detail}, nil
	}
	if outcome.ChargeID == "" {
		return nil, nil, fmt.Errorf("charge order %s: gateway approved without a charge id", p.OrderID)
	}
	changed.Status = StatusCaptured
	changed.ChargeID = outcome.ChargeID
	if p.CancelCausationID != "" {
		changed.Status = StatusRefundPending
		changed.PendingRefund = &Refund{RefundID: refundID, Amount: p.Amount, Reason: RefundOrderCancelled,
			CausationID: p.CancelCausationID, CreatedAt: now}
	}
	return &changed, Processed{PaymentID: p.PaymentID, Amount: p.Amount}, nil
}

// Cancel decides ORDER_CANCELLED; it emits nothing itself. With no record
// yet it returns a CANCELLED tombstone, so a STOCK_RESERVED that arrives
// later charges nothing. On a CHARGE_PENDING intent it notes the cancel: the
// charge's outcome, once known, is refunded (RecordCharge). A CAPTURED
// payment becomes REFUND_PENDING. Anything else has nothing to undo.
func Cancel(existing *Payment, orderID, customerID, causationID, refundID string, now time.Time) (*Payment, error) {
	if causationID == "" {
		return nil, fmt.Errorf("%w: cancel needs a causation id", ErrInvalid)
	}
	switch {
	case existing == nil:
		if orderID == "" || customerID == "" {
			return nil, fmt.Errorf("%w: cancel needs order, customer and causation ids", ErrInvalid)
		}
		return &Payment{
			OrderID: orderID, CustomerID: customerID, Status: StatusCancelled,
			CausationID: causationID, CreatedAt: now, UpdatedAt: now,
		}, nil
	case existing.Status == StatusChargePending && existing.CancelCausationID == "":
		changed := *existing
		changed.CancelCausationID = causationID
		changed.UpdatedAt = now
		return &changed, nil
	}
	return beginRefund(existing, RefundOrderCancelled, causationID, refundID, now)
}

// ShipmentFailed decides SHIPMENT_FAILED: a CAPTURED payment becomes
// REFUND_PENDING; anything else — including no record or a pending charge,
// which the saga's order makes impossible — has nothing to undo.
func ShipmentFailed(existing *Payment, causationID, refundID string, now time.Time) (*Payment, error) {
	if existing == nil {
		return nil, nil
	}
	return beginRefund(existing, RefundShipmentFailed, causationID, refundID, now)
}

// beginRefund records the intent to pay a CAPTURED payment back in full
// (REFUND_PENDING); on any other status (a refund pending or done, FAILED,
// CANCELLED) it does nothing: a refund happens at most once.
func beginRefund(p *Payment, reason RefundReason, causationID, refundID string, now time.Time) (*Payment, error) {
	if p.Status != StatusCaptured {
		return nil, nil
	}
	if causationID == "" || refundID == "" {
		return nil, fmt.Errorf("%w: refund needs causation and refund ids", ErrInvalid)
	}
	changed := *p
	changed.Status = StatusRefundPending
	changed.UpdatedAt = now
	changed.PendingRefund = &Refund{RefundID: refundID, Amount: p.Amount, Reason: reason, CausationID: causationID, CreatedAt: now}
	return &changed, nil
}

// RecordRefund stores the gateway's refund of a REFUND_PENDING payment:
// REFUNDED with Refunded. Any other status: nothing happens.
func RecordRefund(p *Payment, gatewayRefundID string, now time.Time) (*Payment, Event, error) {
	if p == nil || p.Status != StatusRefundPending || p.PendingRefund == nil {
		return nil, nil, nil
	}
	if gatewayRefundID == "" {
		return nil, nil, fmt.Errorf("refund order %s: gateway refunded without a refund id", p.OrderID)
	}
	changed := *p
	changed.Status = StatusRefunded
	changed.UpdatedAt = now
	rf := *p.PendingRefund
	rf.GatewayRefundID = gatewayRefundID
	changed.Refund, changed.PendingRefund = &rf, nil
	return &changed, Refunded{PaymentID: p.PaymentID, RefundID: rf.RefundID, Amount: rf.Amount, Reason: rf.Reason}, nil
}

// Pending reports whether the record waits for the gateway (a charge or a
// refund intent whose outcome is not recorded yet).
func (p *Payment) Pending() bool {
	return p != nil && (p.Status == StatusChargePending || p.Status == StatusRefundPending)
}

// EventCausation is the event a recorded outcome's event answers: the
// STOCK_RESERVED of a charge, the compensation of a refund.
func (p *Payment) EventCausation(ev Event) string {
	if _, ok := ev.(Refunded); ok && p.Refund != nil {
		return p.Refund.CausationID
	}
	return p.CausationID
}

// Visible reports whether the record is a payment the API shows: a
// CANCELLED tombstone is not (nothing was charged or tried), nor a charge
// whose outcome is not known yet (the API has no status for it).
func (p *Payment) Visible() bool {
	return p != nil && p.Status != StatusCancelled && p.Status != StatusChargePending
}
