package payment_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

var (
	t0  = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	t1  = t0.Add(time.Minute)
	eur = func(n int64) payment.Money { return payment.Money{AmountMinor: n, Currency: "EUR"} }
)

const (
	orderID    = "0190a000-0000-7000-8000-000000000001"
	paymentID  = "0190a000-0000-7000-8000-000000000002"
	customerID = "0190a000-0000-7000-8000-000000000003"
	reservedID = "0190a000-0000-7000-8000-000000000004" // the STOCK_RESERVED event
	cancelID   = "0190a000-0000-7000-8000-000000000005" // the ORDER_CANCELLED event
	shipFailID = "0190a000-0000-7000-8000-000000000006" // the SHIPMENT_FAILED event
	refundID   = "0190a000-0000-7000-8000-000000000007"
)

func request() payment.ChargeRequest {
	return payment.ChargeRequest{OrderID: orderID, PaymentID: paymentID, CustomerID: customerID,
		Amount: eur(2500), PaymentToken: "tok_visa", CausationID: reservedID}
}

func captured() *payment.Payment {
	return &payment.Payment{OrderID: orderID, PaymentID: paymentID, CustomerID: customerID, Amount: eur(2500),
		Status: payment.StatusCaptured, ChargeID: "ch_1", CausationID: reservedID, CreatedAt: t0, UpdatedAt: t0}
}

func withStatus(s payment.Status) *payment.Payment {
	p := captured()
	p.Status = s
	if s == payment.StatusRefunded {
		p.Refund = &payment.Refund{RefundID: refundID, Amount: eur(2500), Reason: payment.RefundShipmentFailed, CausationID: shipFailID, CreatedAt: t0}
	}
	return p
}

// gatewayCalls counts calls of the functions a transition is given, so a
// test can assert that a no-op did not touch the gateway.
type gatewayCalls struct{ charges, refunds int }

func (g *gatewayCalls) charge(id string, err error) payment.ChargeFunc {
	return func(payment.ChargeRequest) (string, error) { g.charges++; return id, err }
}

func (g *gatewayCalls) refund(id string, err error) payment.RefundFunc {
	return func(*payment.Payment, string) (string, error) { g.refunds++; return id, err }
}

func TestCharge(t *testing.T) {
	transient := errors.New("gateway timeout")
	tests := []struct {
		name       string
		existing   *payment.Payment
		req        payment.ChargeRequest
		chargeID   string
		chargeErr  error
		want       *payment.Payment
		wantEvent  payment.Event
		wantErr    error
		wantCalled int
	}{
		{
			name: "approved: CAPTURED + PAYMENT_PROCESSED", req: request(), chargeID: "ch_1",
			want:      captured(),
			wantEvent: payment.Processed{PaymentID: paymentID, Amount: eur(2500)}, wantCalled: 1,
		},
		{
			name: "declined: FAILED + PAYMENT_FAILED with reason, code and detail", req: request(),
			chargeErr: &payment.Decline{Reason: payment.FailureInsufficientFunds, Code: "insufficient_funds", Detail: "no money"},
			want: &payment.Payment{OrderID: orderID, PaymentID: paymentID, CustomerID: customerID, Amount: eur(2500),
				Status: payment.StatusFailed, FailureReason: payment.FailureInsufficientFunds, DeclineCode: "insufficient_funds",
				FailureDetail: "no money", CausationID: reservedID, CreatedAt: t0, UpdatedAt: t0},
			wantEvent:  payment.Failed{Reason: payment.FailureInsufficientFunds, DeclineCode: "insufficient_funds", Detail: "no money"},
			wantCalled: 1,
		},
		{name: "late STOCK_RESERVED after ORDER_CANCELLED: tombstone, nothing charged", existing: withStatus(payment.StatusCancelled), req: request()},
		{name: "second STOCK_RESERVED on CAPTURED: nothing charged again", existing: captured(), req: request()},
		{name: "STOCK_RESERVED on FAILED: no retry of a declined charge", existing: withStatus(payment.StatusFailed), req: request()},
		{name: "STOCK_RESERVED on REFUNDED: nothing", existing: withStatus(payment.StatusRefunded), req: request()},
		{name: "gateway error: nothing decided, retry", req: request(), chargeErr: transient, wantErr: transient, wantCalled: 1},
		{name: "approval without a charge id is an error", req: request(), wantErr: errAny, wantCalled: 1},
		{name: "decline without a reason is an error", req: request(), chargeErr: &payment.Decline{Code: "x"}, wantErr: errAny, wantCalled: 1},
		{name: "negative amount is invalid", req: func() payment.ChargeRequest { r := request(); r.Amount.AmountMinor = -1; return r }(), wantErr: payment.ErrInvalid},
		{name: "bad currency is invalid", req: func() payment.ChargeRequest { r := request(); r.Amount.Currency = "eur"; return r }(), wantErr: payment.ErrInvalid},
		{name: "missing token is invalid", req: func() payment.ChargeRequest { r := request(); r.PaymentToken = ""; return r }(), wantErr: payment.ErrInvalid},
		{name: "missing payment id is invalid", req: func() payment.ChargeRequest { r := request(); r.PaymentID = ""; return r }(), wantErr: payment.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls gatewayCalls
			got, ev, err := payment.Charge(tt.existing, tt.req, calls.charge(tt.chargeID, tt.chargeErr), t0)
			checkOutcome(t, got, ev, err, tt.want, tt.wantEvent, tt.wantErr)
			if calls.charges != tt.wantCalled {
				t.Errorf("gateway charged %d times, want %d", calls.charges, tt.wantCalled)
			}
		})
	}
}

func refunded(reason payment.RefundReason, causation string) *payment.Payment {
	p := captured()
	p.Status = payment.StatusRefunded
	p.UpdatedAt = t1
	p.Refund = &payment.Refund{RefundID: refundID, Amount: eur(2500), Reason: reason, GatewayRefundID: "re_1", CausationID: causation, CreatedAt: t1}
	return p
}

func TestCompensations(t *testing.T) {
	transient := errors.New("gateway timeout")
	cancel := func(existing *payment.Payment, refund payment.RefundFunc) (*payment.Payment, payment.Event, error) {
		return payment.Cancel(existing, orderID, customerID, cancelID, refundID, refund, t1)
	}
	shipFailed := func(existing *payment.Payment, refund payment.RefundFunc) (*payment.Payment, payment.Event, error) {
		return payment.ShipmentFailed(existing, shipFailID, refundID, refund, t1)
	}
	tests := []struct {
		name        string
		decide      func(*payment.Payment, payment.RefundFunc) (*payment.Payment, payment.Event, error)
		existing    *payment.Payment
		refundErr   error
		want        *payment.Payment
		wantEvent   payment.Event
		wantErr     error
		wantRefunds int
	}{
		{
			name: "ORDER_CANCELLED on CAPTURED: refund, REFUNDED + PAYMENT_REFUNDED caused by the cancel", decide: cancel,
			existing: captured(), want: refunded(payment.RefundOrderCancelled, cancelID),
			wantEvent:   payment.Refunded{PaymentID: paymentID, RefundID: refundID, Amount: eur(2500), Reason: payment.RefundOrderCancelled},
			wantRefunds: 1,
		},
		{
			name: "SHIPMENT_FAILED on CAPTURED: refund, REFUNDED + PAYMENT_REFUNDED caused by the failure", decide: shipFailed,
			existing: captured(), want: refunded(payment.RefundShipmentFailed, shipFailID),
			wantEvent:   payment.Refunded{PaymentID: paymentID, RefundID: refundID, Amount: eur(2500), Reason: payment.RefundShipmentFailed},
			wantRefunds: 1,
		},
		{
			name: "ORDER_CANCELLED before any payment: CANCELLED tombstone, no event", decide: cancel,
			want: &payment.Payment{OrderID: orderID, CustomerID: customerID, Status: payment.StatusCancelled,
				CausationID: cancelID, CreatedAt: t1, UpdatedAt: t1},
		},
		{name: "ORDER_CANCELLED after SHIPMENT_FAILED refunded: nothing (refund at most once)", decide: cancel, existing: withStatus(payment.StatusRefunded)},
		{name: "SHIPMENT_FAILED after ORDER_CANCELLED refunded: nothing (refund at most once)", decide: shipFailed, existing: withStatus(payment.StatusRefunded)},
		{name: "ORDER_CANCELLED on FAILED: nothing was taken", decide: cancel, existing: withStatus(payment.StatusFailed)},
		{name: "ORDER_CANCELLED on the tombstone: nothing", decide: cancel, existing: withStatus(payment.StatusCancelled)},
		{name: "SHIPMENT_FAILED on FAILED: nothing", decide: shipFailed, existing: withStatus(payment.StatusFailed)},
		{name: "SHIPMENT_FAILED with no payment: nothing", decide: shipFailed},
		{name: "SHIPMENT_FAILED on the tombstone: nothing", decide: shipFailed, existing: withStatus(payment.StatusCancelled)},
		{name: "refund error: nothing decided, retry", decide: cancel, existing: captured(), refundErr: transient, wantErr: transient, wantRefunds: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls gatewayCalls
			before := clone(tt.existing)
			got, ev, err := tt.decide(tt.existing, calls.refund("re_1", tt.refundErr))
			checkOutcome(t, got, ev, err, tt.want, tt.wantEvent, tt.wantErr)
			if calls.refunds != tt.wantRefunds {
				t.Errorf("gateway refunded %d times, want %d", calls.refunds, tt.wantRefunds)
			}
			if !reflect.DeepEqual(tt.existing, before) {
				t.Errorf("the loaded payment was modified in place: %+v", tt.existing)
			}
		})
	}
}

func TestCancelNeedsIDsForATombstone(t *testing.T) {
	_, _, err := payment.Cancel(nil, orderID, "", cancelID, refundID, nil, t1)
	checkErr(t, err, payment.ErrInvalid)
}

func TestVisible(t *testing.T) {
	for _, s := range []payment.Status{payment.StatusCaptured, payment.StatusFailed, payment.StatusRefunded} {
		if !withStatus(s).Visible() {
			t.Errorf("%s payment is not visible", s)
		}
	}
	if withStatus(payment.StatusCancelled).Visible() {
		t.Error("a CANCELLED tombstone is visible")
	}
	var none *payment.Payment
	if none.Visible() {
		t.Error("nil payment is visible")
	}
}

func clone(p *payment.Payment) *payment.Payment {
	if p == nil {
		return nil
	}
	c := *p
	if p.Refund != nil {
		r := *p.Refund
		c.Refund = &r
	}
	return &c
}

// checkOutcome compares a transition's result with the expected one.
func checkOutcome(t *testing.T, got *payment.Payment, ev payment.Event, err error, want *payment.Payment, wantEvent payment.Event, wantErr error) {
	t.Helper()
	checkErr(t, err, wantErr)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("payment = %+v, want %+v", got, want)
	}
	if !reflect.DeepEqual(ev, wantEvent) {
		t.Errorf("event = %#v, want %#v", ev, wantEvent)
	}
}

// errAny stands for "some error, whichever".
var errAny = errors.New("any error")

// checkErr: want nil → no error; errAny → some error; else want in err's chain.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && err == nil:
		t.Fatalf("no error, want %v", want)
	case want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("error %v, want %v in its chain", err, want)
	}
}
