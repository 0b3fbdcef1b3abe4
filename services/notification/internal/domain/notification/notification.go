// Package notification decides what a customer is told about a step of their
// order's saga, and renders it. It is pure: no storage, bus or wire types.
//
// A notification is a function of one event: its id derives from the event
// id and its send time is the event's occurrence time, so handling the same
// event twice (a redelivery, a replay) yields the very same notification, and
// a store keyed by those values keeps one row per event.
package notification

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// EventType is a saga event's short name, e.g. "ORDER_CREATED".
type EventType string

// The customer-facing event types; every other type is logged, not told.
const (
	OrderCreated    EventType = "ORDER_CREATED"
	OrderCompleted  EventType = "ORDER_COMPLETED"
	OrderCancelled  EventType = "ORDER_CANCELLED"
	PaymentRefunded EventType = "PAYMENT_REFUNDED"
)

// Channel is how a notification goes out.
type Channel string

// ChannelEmail is the only channel so far.
const ChannelEmail Channel = "EMAIL"

// CancelReason says why an order was cancelled.
type CancelReason int

// Reasons an order is cancelled (ORDER_CANCELLED).
const (
	ReasonUnspecified CancelReason = iota
	ReasonOutOfStock
	ReasonPaymentFailed
	ReasonShipmentFailed
	ReasonCustomerRequested
	ReasonTimeout
)

// words is how each reason reads after "because".
var words = map[CancelReason]string{
	ReasonOutOfStock:        "some of its items are out of stock",
	ReasonPaymentFailed:     "the payment did not go through",
	ReasonShipmentFailed:    "we could not arrange its delivery",
	ReasonCustomerRequested: "you asked us to cancel it",
	ReasonTimeout:           "it could not be completed in time",
}

// Words is the reason in plain words, for the customer.
func (r CancelReason) Words() string {
	if w, ok := words[r]; ok {
		return w
	}
	return "of a problem while processing it"
}

// Money is an amount in the currency's minor unit.
type Money struct {
	AmountMinor int64
	Currency    string // ISO 4217, e.g. "EUR"
}

// minorDigits lists the ISO 4217 currencies whose minor unit is not 1/100.
var minorDigits = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
	"RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

// String renders the amount with its currency's decimals, e.g. "12.34 EUR".
func (m Money) String() string {
	digits, ok := minorDigits[m.Currency]
	if !ok {
		digits = 2
	}
	sign, amount := "", m.AmountMinor
	if amount < 0 {
		sign, amount = "-", -amount
	}
	s := strconv.FormatInt(amount, 10)
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	return sign + s + " " + m.Currency
}

// Event is what notification needs to know of one saga event.
type Event struct {
	ID         string
	Type       EventType
	OrderID    string
	CustomerID string
	OccurredAt time.Time

	OrderTotal Money // ORDER_CREATED
	// CancelReason is all a cancel tells the customer, in fixed words: the
	// event's free-text detail (it may be another person's words, e.g. what
	// a caller typed into CancelOrder) never reaches a notification.
	CancelReason CancelReason // ORDER_CANCELLED
	RefundAmount Money        // PAYMENT_REFUNDED
}

// Notification is one message to a customer.
type Notification struct {
	ID         string
	CustomerID string
	OrderID    string
	Channel    Channel
	Template   string
	Subject    string
	Body       string
	EventType  EventType
	EventID    string
	// SendTime is the event's occurrence time to the millisecond (what every
	// store keeps), so a re-run yields the same value.
	SendTime time.Time
}

// ErrInvalidEvent marks an event no notification can be made of; retrying
// cannot help.
var ErrInvalidEvent = errors.New("invalid event for notification")

// idNamespace scopes notification ids derived from event ids (UUIDv5).
var idNamespace = uuid.MustParse("3f5c2a0e-8d7b-4c61-9e2f-0b1d6a4c7e93")

// IDFor is the id of the notification caused by the event with id eventID.
func IDFor(eventID string) string {
	return uuid.NewSHA1(idNamespace, []byte("notification/"+eventID)).String()
}

// For returns the notification the customer gets for e, or ok = false when e
// is not customer-facing (it is only logged). The same event always gives the
// same notification.
func For(e Event) (n Notification, ok bool, err error) {
	switch e.Type {
	case OrderCreated, OrderCompleted, OrderCancelled, PaymentRefunded:
	default:
		return Notification{}, false, nil
	}
	if err := check(e); err != nil {
		return Notification{}, false, err
	}
	n = Notification{
		ID:         IDFor(e.ID),
		CustomerID: e.CustomerID,
		OrderID:    e.OrderID,
		Channel:    ChannelEmail,
		EventType:  e.Type,
		EventID:    e.ID,
		SendTime:   e.OccurredAt.UTC().Truncate(time.Millisecond),
	}
	ref := Reference(e.OrderID)
	switch e.Type {
	case OrderCreated:
		n.Template = "order_received"
		n.Subject = fmt.Sprintf("We received your order %s", ref)
		n.Body = fmt.Sprintf("Thank you! We received your order %s of %s and are preparing it.", ref, e.OrderTotal)
	case OrderCompleted:
		n.Template = "order_completed"
		n.Subject = fmt.Sprintf("Your order %s ships", ref)
		n.Body = fmt.Sprintf("Good news: your order %s is complete and on its way to you.", ref)
	case OrderCancelled:
		n.Template = "order_cancelled"
		n.Subject = fmt.Sprintf("Your order %s was cancelled", ref)
		n.Body = fmt.Sprintf("We are sorry: your order %s was cancelled because %s.", ref, e.CancelReason.Words())
	case PaymentRefunded:
		n.Template = "payment_refunded"
		n.Subject = fmt.Sprintf("Your refund of %s", e.RefundAmount)
		n.Body = fmt.Sprintf("We refunded %s for your order %s. It may take a few days to show on your statement.", e.RefundAmount, ref)
	}
	return n, true, nil
}

// Reference is the short order reference customers see: the order id's
// first eight characters, upper case.
func Reference(orderID string) string {
	if len(orderID) > 8 {
		orderID = orderID[:8]
	}
	return strings.ToUpper(orderID)
}

func check(e Event) error {
	var missing []string
	if e.ID == "" {
		missing = append(missing, "event id")
	}
	if e.CustomerID == "" {
		missing = append(missing, "customer id")
	}
	if e.OrderID == "" {
		missing = append(missing, "order id")
	}
	if e.OccurredAt.IsZero() {
		missing = append(missing, "occurrence time")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s %s without %s", ErrInvalidEvent, e.Type, e.ID, strings.Join(missing, ", "))
	}
	if e.Type == PaymentRefunded && (e.RefundAmount.AmountMinor < 0 || e.RefundAmount.Currency == "") {
		return fmt.Errorf("%w: refund %s has amount %d %q", ErrInvalidEvent, e.ID, e.RefundAmount.AmountMinor, e.RefundAmount.Currency)
	}
	return nil
}
