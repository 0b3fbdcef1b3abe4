package order_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func draft() order.Draft {
	return order.Draft{
		ID:         "0193a1a0-0000-7000-8000-000000000001",
		CustomerID: "0193a1a0-0000-7000-8000-0000000000c1",
		Lines: []order.Line{
			{SKU: "BOOK-1", Quantity: 2, UnitPriceMinor: 1250},
			{SKU: "PEN-2", Quantity: 3, UnitPriceMinor: 199},
		},
		Currency:        "EUR",
		ShippingAddress: order.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"},
		PaymentToken:    "tok_visa",
	}
}

func pending(t *testing.T) *order.Order {
	t.Helper()
	o, err := order.New(draft(), t0, 30*time.Second)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return o
}

func TestNewComputesTotalAndDeadline(t *testing.T) {
	o := pending(t)
	if o.Status != order.StatusPending {
		t.Errorf("status %s, want PENDING", o.Status)
	}
	if want := int64(2*1250 + 3*199); o.TotalMinor != want {
		t.Errorf("total %d, want %d", o.TotalMinor, want)
	}
	if want := t0.Add(30 * time.Second); !o.Deadline.Equal(want) {
		t.Errorf("deadline %s, want %s", o.Deadline, want)
	}
	if !o.CreatedAt.Equal(t0) || !o.UpdatedAt.Equal(t0) {
		t.Errorf("created %s updated %s, want %s", o.CreatedAt, o.UpdatedAt, t0)
	}
}

func TestNewRejectsBadInputNamingTheField(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*order.Draft)
		field string
	}{
		{"no id", func(d *order.Draft) { d.ID = "" }, "order_id"},
		{"no customer", func(d *order.Draft) { d.CustomerID = "" }, "customer_id"},
		{"no lines", func(d *order.Draft) { d.Lines = nil }, "lines"},
		{"too many lines", func(d *order.Draft) { d.Lines = make([]order.Line, order.MaxLines+1) }, "lines"},
		{"bad sku", func(d *order.Draft) { d.Lines[1].SKU = "pen" }, "lines[1].sku"},
		{"duplicate sku", func(d *order.Draft) { d.Lines[1].SKU = "BOOK-1" }, "lines[1].sku"},
		{"zero quantity", func(d *order.Draft) { d.Lines[0].Quantity = 0 }, "lines[0].quantity"},
		{"negative quantity", func(d *order.Draft) { d.Lines[0].Quantity = -1 }, "lines[0].quantity"},
		{"huge quantity", func(d *order.Draft) { d.Lines[0].Quantity = order.MaxQuantity + 1 }, "lines[0].quantity"},
		{"negative price", func(d *order.Draft) { d.Lines[1].UnitPriceMinor = -5 }, "lines[1].unit_price_minor"},
		{"total overflows", func(d *order.Draft) { d.Lines[1].UnitPriceMinor = math.MaxInt64 / 2 }, "lines[1].unit_price_minor"},
		{"bad currency", func(d *order.Draft) { d.Currency = "eur" }, "currency"},
		{"no currency (XXX)", func(d *order.Draft) { d.Currency = "XXX" }, "currency"},
		{"testing currency (XTS)", func(d *order.Draft) { d.Currency = "XTS" }, "currency"},
		{"unassigned currency", func(d *order.Draft) { d.Currency = "ABC" }, "currency"},
		{"no recipient", func(d *order.Draft) { d.ShippingAddress.Name = "" }, "shipping_address.name"},
		{"no street", func(d *order.Draft) { d.ShippingAddress.Line1 = "" }, "shipping_address.line1"},
		{"no city", func(d *order.Draft) { d.ShippingAddress.City = "" }, "shipping_address.city"},
		{"bad country", func(d *order.Draft) { d.ShippingAddress.CountryCode = "Germany" }, "shipping_address.country_code"},
		{"no token", func(d *order.Draft) { d.PaymentToken = "" }, "payment_method_token"},
		{"long token", func(d *order.Draft) { d.PaymentToken = strings.Repeat("x", 257) }, "payment_method_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := draft()
			d.Lines = slices.Clone(d.Lines)
			tt.edit(&d)
			_, err := order.New(d, t0, time.Minute)
			var invalid *order.InvalidError
			if !errors.As(err, &invalid) || !errors.Is(err, order.ErrInvalid) {
				t.Fatalf("New = %v, want an InvalidError", err)
			}
			if invalid.Field != tt.field {
				t.Errorf("field %q, want %q (%v)", invalid.Field, tt.field, err)
			}
		})
	}
}

func step(typ order.EventType, id string) order.Step {
	return order.Step{EventType: typ, EventID: id, OccurredAt: t0.Add(time.Second), Detail: string(typ) + " detail"}
}

// Every saga event on a PENDING order and on each terminal order: what it
// becomes, what it emits, and that it is always recorded.
func TestObserve(t *testing.T) {
	later := t0.Add(5 * time.Second)
	tests := []struct {
		name       string
		from       order.Status
		event      order.EventType
		wantStatus order.Status
		wantReason order.CancelReason
		wantEmit   []order.EventType
	}{
		{"stock reserved is only recorded", order.StatusPending, "STOCK_RESERVED", order.StatusPending, "", nil},
		{"payment processed is only recorded", order.StatusPending, "PAYMENT_PROCESSED", order.StatusPending, "", nil},
		{"inventory updated is only recorded", order.StatusPending, "INVENTORY_UPDATED", order.StatusPending, "", nil},
		{"out of stock cancels", order.StatusPending, order.EventOutOfStock, order.StatusCancelled, order.ReasonOutOfStock, []order.EventType{order.EventOrderCancelled}},
		{"payment failed cancels", order.StatusPending, order.EventPaymentFailed, order.StatusCancelled, order.ReasonPaymentFailed, []order.EventType{order.EventOrderCancelled}},
		{"shipment failed cancels", order.StatusPending, order.EventShipmentFailed, order.StatusCancelled, order.ReasonShipmentFailed, []order.EventType{order.EventOrderCancelled}},
		{"shipment created completes", order.StatusPending, order.EventShipmentCreated, order.StatusCompleted, "", []order.EventType{order.EventOrderCompleted}},
		// Late events after the saga ended: recorded, never change the outcome.
		{"shipment created after cancel", order.StatusCancelled, order.EventShipmentCreated, order.StatusCancelled, order.ReasonCustomerRequested, nil},
		{"stock reserved after cancel", order.StatusCancelled, "STOCK_RESERVED", order.StatusCancelled, order.ReasonCustomerRequested, nil},
		{"payment failed after cancel", order.StatusCancelled, order.EventPaymentFailed, order.StatusCancelled, order.ReasonCustomerRequested, nil},
		{"compensation after cancel", order.StatusCancelled, "PAYMENT_REFUNDED", order.StatusCancelled, order.ReasonCustomerRequested, nil},
		{"stock restored after cancel", order.StatusCancelled, "STOCK_RESTORED", order.StatusCancelled, order.ReasonCustomerRequested, nil},
		{"shipment cancelled with the carrier after cancel: a step, still cancelled", order.StatusCancelled, "SHIPMENT_CANCELLED", order.StatusCancelled, order.ReasonCustomerRequested, nil},
		{"shipment failed after completion", order.StatusCompleted, order.EventShipmentFailed, order.StatusCompleted, "", nil},
		{"shipment created again after completion", order.StatusCompleted, order.EventShipmentCreated, order.StatusCompleted, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := pending(t)
			switch tt.from {
			case order.StatusCancelled:
				if _, err := o.CancelByCustomer("changed my mind", t0); err != nil {
					t.Fatal(err)
				}
			case order.StatusCompleted:
				o.Observe(step(order.EventShipmentCreated, "first-shipment"), t0)
			}
			before := len(o.Steps)
			emit := o.Observe(step(tt.event, "ev-1"), later)
			if o.Status != tt.wantStatus || o.CancelReason != tt.wantReason {
				t.Errorf("now %s/%q, want %s/%q", o.Status, o.CancelReason, tt.wantStatus, tt.wantReason)
			}
			if !slices.Equal(emit, tt.wantEmit) {
				t.Errorf("emits %v, want %v", emit, tt.wantEmit)
			}
			if len(o.Steps) != before+1 || !o.HasStep("ev-1") {
				t.Fatalf("step not recorded: %+v", o.Steps)
			}
			if got := o.Steps[len(o.Steps)-1]; got.EventType != tt.event || got.Detail != string(tt.event)+" detail" {
				t.Errorf("recorded %+v", got)
			}
			if !o.UpdatedAt.Equal(later) {
				t.Errorf("updated %s, want %s", o.UpdatedAt, later)
			}
		})
	}
}

func TestFailureDetailBecomesCancelDetail(t *testing.T) {
	o := pending(t)
	s := step(order.EventOutOfStock, "ev-1")
	s.Detail = strings.Repeat("é", order.MaxDetailLength+10)
	o.Observe(s, t0)
	if n := len([]rune(o.CancelDetail)); n != order.MaxDetailLength {
		t.Errorf("cancel detail has %d characters, want it cut to %d", n, order.MaxDetailLength)
	}
	if o.CancelDetail != o.Steps[0].Detail {
		t.Error("cancel detail differs from the step detail")
	}
}

func TestCancelByCustomer(t *testing.T) {
	tests := []struct {
		name       string
		from       func(*order.Order)
		wantErr    error
		wantEmit   []order.EventType
		wantReason order.CancelReason
	}{
		{"pending is cancelled", func(*order.Order) {}, nil, []order.EventType{order.EventOrderCancelled}, order.ReasonCustomerRequested},
		{"cancelled stays as it was", func(o *order.Order) { o.Observe(step(order.EventPaymentFailed, "pf"), t0) }, nil, nil, order.ReasonPaymentFailed},
		{"completed cannot be cancelled", func(o *order.Order) { o.Observe(step(order.EventShipmentCreated, "sc"), t0) }, order.ErrNotPending, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := pending(t)
			tt.from(o)
			emit, err := o.CancelByCustomer("found it cheaper", t0.Add(time.Second))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(emit, tt.wantEmit) {
				t.Errorf("emits %v, want %v", emit, tt.wantEmit)
			}
			if o.CancelReason != tt.wantReason {
				t.Errorf("reason %q, want %q", o.CancelReason, tt.wantReason)
			}
		})
	}
	o := pending(t)
	if _, err := o.CancelByCustomer("found it cheaper", t0); err != nil || o.CancelDetail != "found it cheaper" {
		t.Errorf("detail %q, err %v", o.CancelDetail, err)
	}
}

func TestExpire(t *testing.T) {
	tests := []struct {
		name       string
		from       func(*order.Order)
		at         time.Duration // after creation; the deadline is at 30s
		wantEmit   []order.EventType
		wantStatus order.Status
	}{
		{"before the deadline nothing happens", func(*order.Order) {}, 29 * time.Second, nil, order.StatusPending},
		{"at the deadline it times out", func(*order.Order) {}, 30 * time.Second, []order.EventType{order.EventOrderCancelled}, order.StatusCancelled},
		{"after the deadline it times out", func(*order.Order) {}, time.Hour, []order.EventType{order.EventOrderCancelled}, order.StatusCancelled},
		{"a completed order stays completed", func(o *order.Order) { o.Observe(step(order.EventShipmentCreated, "sc"), t0) }, time.Hour, nil, order.StatusCompleted},
		{"a cancelled order is not cancelled twice", func(o *order.Order) { _, _ = o.CancelByCustomer("", t0) }, time.Hour, nil, order.StatusCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := pending(t)
			tt.from(o)
			reason := o.CancelReason
			emit := o.Expire(t0.Add(tt.at))
			if !slices.Equal(emit, tt.wantEmit) || o.Status != tt.wantStatus {
				t.Fatalf("emits %v, status %s; want %v, %s", emit, o.Status, tt.wantEmit, tt.wantStatus)
			}
			switch {
			case emit != nil && o.CancelReason != order.ReasonTimeout:
				t.Errorf("reason %q, want TIMEOUT", o.CancelReason)
			case emit == nil && o.CancelReason != reason:
				t.Errorf("reason changed from %q to %q", reason, o.CancelReason)
			}
		})
	}
}

func TestStatusTerminal(t *testing.T) {
	for s, want := range map[order.Status]bool{order.StatusPending: false, order.StatusCompleted: true, order.StatusCancelled: true} {
		if s.Terminal() != want {
			t.Errorf("%s.Terminal() = %v", s, !want)
		}
	}
}

// The fingerprint is the request's content: equal drafts (whatever their
// id or request id) hash alike; a change of any field the customer sends
// changes it, and moving text between adjacent fields does too.
func TestFingerprintCoversEveryRequestField(t *testing.T) {
	base := draft()
	same := draft()
	same.ID, same.RequestID = "another id", "another request id"
	if !slices.Equal(base.Fingerprint(), same.Fingerprint()) {
		t.Fatal("equal requests with other ids hash differently")
	}
	changes := map[string]func(d *order.Draft){
		"customer":      func(d *order.Draft) { d.CustomerID = "0193a1a0-0000-7000-8000-0000000000c2" },
		"sku":           func(d *order.Draft) { d.Lines[0].SKU = "BOOK-2" },
		"quantity":      func(d *order.Draft) { d.Lines[0].Quantity = 3 },
		"unit price":    func(d *order.Draft) { d.Lines[1].UnitPriceMinor = 200 },
		"line order":    func(d *order.Draft) { d.Lines[0], d.Lines[1] = d.Lines[1], d.Lines[0] },
		"one line less": func(d *order.Draft) { d.Lines = d.Lines[:1] },
		"currency":      func(d *order.Draft) { d.Currency = "USD" },
		"name":          func(d *order.Draft) { d.ShippingAddress.Name = "Ada L." },
		"line2":         func(d *order.Draft) { d.ShippingAddress.Line2 = "Apt 3" },
		"text moved":    func(d *order.Draft) { d.ShippingAddress.Line1, d.ShippingAddress.Line2 = "Main St", " 1" },
		"postal code":   func(d *order.Draft) { d.ShippingAddress.PostalCode = "10117" },
		"country":       func(d *order.Draft) { d.ShippingAddress.CountryCode = "AT" },
		"payment token": func(d *order.Draft) { d.PaymentToken = "tok_mastercard" },
		"city":          func(d *order.Draft) { d.ShippingAddress.City = "Potsdam" },
	}
	seen := map[string]string{string(base.Fingerprint()): "base"}
	for name, change := range changes {
		d := draft()
		change(&d)
		fp := string(d.Fingerprint())
		if other, ok := seen[fp]; ok {
			t.Errorf("%s: same fingerprint as %s", name, other)
		}
		seen[fp] = name
	}
}

// A retry is answered with the stored order only when it is the same
// request; the refusal names request_id. Orders stored without a
// fingerprint are matched by customer alone.
func TestRetryMustBeTheSameRequest(t *testing.T) {
	d := draft()
	d.RequestID = "0193a1a0-0000-7000-8000-0000000000r1"
	o, err := order.New(d, t0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.RequestHash) != 32 {
		t.Fatalf("order created under a request id keeps a %d-byte hash, want 32", len(o.RequestHash))
	}
	if err := o.AnswersRetry(d.CustomerID, d.Fingerprint()); err != nil {
		t.Errorf("same request: %v", err)
	}
	changed := draft()
	changed.Lines[0].Quantity = 5
	err = o.AnswersRetry(d.CustomerID, changed.Fingerprint())
	if !errors.Is(err, order.ErrRequestIDReused) || !strings.Contains(err.Error(), "request_id") {
		t.Errorf("different payload: %v, want ErrRequestIDReused naming request_id", err)
	}
	if err := o.AnswersRetry("0193a1a0-0000-7000-8000-0000000000c9", d.Fingerprint()); !errors.Is(err, order.ErrRequestIDReused) {
		t.Errorf("another customer: %v, want ErrRequestIDReused", err)
	}
	o.RequestHash = nil // stored before fingerprints were kept
	if err := o.AnswersRetry(d.CustomerID, changed.Fingerprint()); err != nil {
		t.Errorf("legacy order, same customer: %v", err)
	}
	if withoutKey := pending(t); withoutKey.RequestHash != nil {
		t.Errorf("order without a request id keeps hash %x", withoutKey.RequestHash)
	}
}
