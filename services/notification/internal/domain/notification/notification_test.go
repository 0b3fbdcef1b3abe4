package notification_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
)

const (
	orderID    = "0192f3a4-1111-7000-8000-000000000001"
	customerID = "0192f3a4-2222-7000-8000-000000000002"
	eventID    = "5b1f0d3e-3333-5000-8000-000000000003"
)

var occurred = time.Date(2026, 11, 24, 9, 30, 15, 123456789, time.UTC)

func event(t notification.EventType) notification.Event {
	return notification.Event{ID: eventID, Type: t, OrderID: orderID, CustomerID: customerID, OccurredAt: occurred}
}

func TestForEveryEventType(t *testing.T) {
	cancelled := event(notification.OrderCancelled)
	cancelled.CancelReason = notification.ReasonOutOfStock
	refunded := event(notification.PaymentRefunded)
	refunded.RefundAmount = notification.Money{AmountMinor: 4999, Currency: "EUR"}
	created := event(notification.OrderCreated)
	created.OrderTotal = notification.Money{AmountMinor: 12345, Currency: "USD"}

	tests := []struct {
		name     string
		event    notification.Event
		told     bool
		template string
		subject  string
		body     []string // substrings the body must hold
	}{
		{"order created", created, true, "order_received", "We received your order 0192F3A4",
			[]string{"received your order 0192F3A4", "123.45 USD"}},
		{"order completed", event(notification.OrderCompleted), true, "order_completed", "Your order 0192F3A4 ships",
			[]string{"on its way"}},
		{"order cancelled, reason in words", cancelled, true, "order_cancelled", "Your order 0192F3A4 was cancelled",
			[]string{"because some of its items are out of stock."}},
		{"payment refunded, the compensation is told", refunded, true, "payment_refunded", "Your refund of 49.99 EUR",
			[]string{"We refunded 49.99 EUR", "0192F3A4"}},
		// Steps in between and the other compensations are logged only.
		{"stock reserved", event("STOCK_RESERVED"), false, "", "", nil},
		{"out of stock", event("OUT_OF_STOCK"), false, "", "", nil},
		{"inventory updated", event("INVENTORY_UPDATED"), false, "", "", nil},
		{"stock restored", event("STOCK_RESTORED"), false, "", "", nil},
		{"payment processed", event("PAYMENT_PROCESSED"), false, "", "", nil},
		{"payment failed", event("PAYMENT_FAILED"), false, "", "", nil},
		{"shipment created", event("SHIPMENT_CREATED"), false, "", "", nil},
		{"shipment failed", event("SHIPMENT_FAILED"), false, "", "", nil},
		{"notification sent", event("NOTIFICATION_SENT"), false, "", "", nil},
		{"unknown type", event("SOMETHING_NEW"), false, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, told, err := notification.For(tt.event)
			if err != nil {
				t.Fatalf("For: %v", err)
			}
			if told != tt.told {
				t.Fatalf("told = %v, want %v", told, tt.told)
			}
			if !told {
				if n != (notification.Notification{}) {
					t.Fatalf("a logged-only event gave a notification: %+v", n)
				}
				return
			}
			want := notification.Notification{
				ID: notification.IDFor(eventID), CustomerID: customerID, OrderID: orderID,
				Channel: notification.ChannelEmail, Template: tt.template, Subject: tt.subject, Body: n.Body,
				EventType: tt.event.Type, EventID: eventID, SendTime: occurred.Truncate(time.Millisecond),
			}
			if n != want {
				t.Fatalf("notification\n got %+v\nwant %+v", n, want)
			}
			for _, s := range tt.body {
				if !strings.Contains(n.Body, s) {
					t.Errorf("body %q lacks %q", n.Body, s)
				}
			}
		})
	}
}

// The same event always gives the same notification: a redelivery or a
// replay rewrites the same row with the same values.
func TestForIsAFunctionOfTheEvent(t *testing.T) {
	e := event(notification.OrderCompleted)
	first, _, err := notification.For(e)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := notification.For(e)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Fatalf("two runs differ:\n%+v\n%+v", first, second)
	}
	other := e
	other.ID = "5b1f0d3e-3333-5000-8000-000000000004"
	third, _, _ := notification.For(other)
	if third.ID == first.ID {
		t.Fatal("different events gave the same notification id")
	}
	if first.SendTime.Location() != time.UTC {
		t.Fatalf("send time %v is not UTC", first.SendTime)
	}
}

func TestCancelReasonsInWords(t *testing.T) {
	tests := []struct {
		reason notification.CancelReason
		words  string
	}{
		{notification.ReasonOutOfStock, "some of its items are out of stock"},
		{notification.ReasonPaymentFailed, "the payment did not go through"},
		{notification.ReasonShipmentFailed, "we could not arrange its delivery"},
		{notification.ReasonCustomerRequested, "you asked us to cancel it"},
		{notification.ReasonTimeout, "it could not be completed in time"},
		{notification.ReasonUnspecified, "of a problem while processing it"},
		{notification.CancelReason(99), "of a problem while processing it"},
	}
	for _, tt := range tests {
		e := event(notification.OrderCancelled)
		e.CancelReason = tt.reason
		n, told, err := notification.For(e)
		if err != nil || !told {
			t.Fatalf("reason %d: told=%v err=%v", tt.reason, told, err)
		}
		if want := "was cancelled because " + tt.words + "."; !strings.Contains(n.Body, want) {
			t.Errorf("reason %d: body %q lacks %q", tt.reason, n.Body, want)
		}
		if want := fmt.Sprintf("We are sorry: your order 0192F3A4 was cancelled because %s.", tt.words); n.Body != want {
			t.Errorf("reason %d: body %q, want exactly the fixed wording %q", tt.reason, n.Body, want)
		}
	}
}

func TestMoneyString(t *testing.T) {
	tests := []struct {
		money notification.Money
		want  string
	}{
		{notification.Money{AmountMinor: 4999, Currency: "EUR"}, "49.99 EUR"},
		{notification.Money{AmountMinor: 5, Currency: "EUR"}, "0.05 EUR"},
		{notification.Money{AmountMinor: 0, Currency: "USD"}, "0.00 USD"},
		{notification.Money{AmountMinor: 100000, Currency: "GBP"}, "1000.00 GBP"},
		{notification.Money{AmountMinor: 1500, Currency: "JPY"}, "1500 JPY"},
		{notification.Money{AmountMinor: 1234, Currency: "BHD"}, "1.234 BHD"},
		{notification.Money{AmountMinor: 7, Currency: "KWD"}, "0.007 KWD"},
		{notification.Money{AmountMinor: -250, Currency: "EUR"}, "-2.50 EUR"},
	}
	for _, tt := range tests {
		if got := tt.money.String(); got != tt.want {
			t.Errorf("%+v = %q, want %q", tt.money, got, tt.want)
		}
	}
}

func TestInvalidEventsAreRejected(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*notification.Event)
	}{
		{"no event id", func(e *notification.Event) { e.ID = "" }},
		{"no customer", func(e *notification.Event) { e.CustomerID = "" }},
		{"no order", func(e *notification.Event) { e.OrderID = "" }},
		{"no time", func(e *notification.Event) { e.OccurredAt = time.Time{} }},
		{"negative refund", func(e *notification.Event) {
			e.Type, e.RefundAmount = notification.PaymentRefunded, notification.Money{AmountMinor: -1, Currency: "EUR"}
		}},
		{"refund without currency", func(e *notification.Event) {
			e.Type, e.RefundAmount = notification.PaymentRefunded, notification.Money{AmountMinor: 100}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := event(notification.OrderCompleted)
			tt.mutate(&e)
			_, told, err := notification.For(e)
			if !errors.Is(err, notification.ErrInvalidEvent) || told {
				t.Fatalf("For = told %v, %v; want ErrInvalidEvent", told, err)
			}
		})
	}
	// A logged-only event needs no customer fields: it is never told.
	e := event("STOCK_RESERVED")
	e.CustomerID = ""
	if _, told, err := notification.For(e); err != nil || told {
		t.Fatalf("logged-only event: told %v, %v", told, err)
	}
}

func TestReference(t *testing.T) {
	for in, want := range map[string]string{orderID: "0192F3A4", "abc": "ABC", "": ""} {
		if got := notification.Reference(in); got != want {
			t.Errorf("Reference(%q) = %q, want %q", in, got, want)
		}
	}
}
