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

func chargePending() *payment.Payment {
	return &payment.Payment{OrderID: orderID, PaymentID: paymentID, CustomerID: customerID, Amount: eur(2500),
		Status: payment.StatusChargePending, PaymentToken: "tok_visa", CausationID: reservedID, CreatedAt: t0, UpdatedAt: t0}
}

func refundPending(reason payment.RefundReason, causation string) *payment.Payment {
	p := captured()
	p.Status, p.UpdatedAt = payment.StatusRefundPending, t1
	p.PendingRefund = &payment.Refund{RefundID: refundID, Amount: eur(2500), Reason: reason, CausationID: causation, CreatedAt: t1}
	return p
}

func TestBeginCharge(t *testing.T) {
	bad := request()
	bad.PaymentToken = ""
	negative := request()
	negative.Amount = eur(-1)
	tests := []struct {
		name     string
		existing *payment.Payment
		req      payment.ChargeRequest
		want     *payment.Payment
		wantErr  error
	}{
		{"no record: a CHARGE_PENDING intent holding the token", nil, request(), chargePending(), nil},
		{"an intent already: nothing", chargePending(), request(), nil, nil},
		{"decided already: nothing", captured(), request(), nil, nil},
		{"a late STOCK_RESERVED after the cancel's tombstone: nothing", withStatus(payment.StatusCancelled), request(), nil, nil},
		{"no token: invalid", nil, bad, nil, payment.ErrInvalid},
		{"negative amount: invalid", nil, negative, nil, payment.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := payment.BeginCharge(tt.existing, tt.req, t0)
			checkOutcome(t, got, nil, err, tt.want, nil, tt.wantErr)
		})
	}
}

func TestRecordCharge(t *testing.T) {
	decline := &payment.Decline{Reason: payment.FailureDeclined, Code: "card_declined", Detail: "no"}
	capturedAt1 := captured()
	capturedAt1.UpdatedAt = t1
	failed := chargePending()
	failed.Status, failed.PaymentToken, failed.UpdatedAt = payment.StatusFailed, "", t1
	failed.FailureReason, failed.DeclineCode, failed.FailureDetail = payment.FailureDeclined, "card_declined", "no"
	cancelNoted := chargePending()
	cancelNoted.CancelCausationID = cancelID
	refundAfterCancel := refundPending(payment.RefundOrderCancelled, cancelID)
	refundAfterCancel.CancelCausationID = cancelID
	tests := []struct {
		name      string
		p         *payment.Payment
		outcome   payment.ChargeOutcome
		want      *payment.Payment
		wantEvent payment.Event
		wantErr   error
	}{
		{"captured: CAPTURED, token dropped, PAYMENT_PROCESSED", chargePending(), payment.ChargeOutcome{ChargeID: "ch_1"},
			capturedAt1, payment.Processed{PaymentID: paymentID, Amount: eur(2500)}, nil},
		{"declined: FAILED with the reason, PAYMENT_FAILED", chargePending(), payment.ChargeOutcome{Decline: decline},
			failed, payment.Failed{Reason: payment.FailureDeclined, DeclineCode: "card_declined", Detail: "no"}, nil},
		{"captured after the order was cancelled: processed, refund intent for the cancel", cancelNoted,
			payment.ChargeOutcome{ChargeID: "ch_1"}, refundAfterCancel, payment.Processed{PaymentID: paymentID, Amount: eur(2500)}, nil},
		{"recorded already (another replica): nothing", captured(), payment.ChargeOutcome{ChargeID: "ch_1"}, nil, nil, nil},
		{"no record: nothing", nil, payment.ChargeOutcome{ChargeID: "ch_1"}, nil, nil, nil},
		{"approved without a charge id: error", chargePending(), payment.ChargeOutcome{}, nil, nil, errAny},
		{"a decline without a reason: error", chargePending(), payment.ChargeOutcome{Decline: &payment.Decline{Code: "x"}}, nil, nil, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ev, err := payment.RecordCharge(clone(tt.p), tt.outcome, refundID, t1)
			checkOutcome(t, got, ev, err, tt.want, tt.wantEvent, tt.wantErr)
		})
	}
}

func refunded(reason payment.RefundReason, causation string) *payment.Payment {
	p := captured()
	p.Status, p.UpdatedAt = payment.StatusRefunded, t1
	p.Refund = &payment.Refund{RefundID: refundID, Amount: eur(2500), Reason: reason, GatewayRefundID: "re_1", CausationID: causation, CreatedAt: t1}
	return p
}

func TestCompensations(t *testing.T) {
	tombstone := &payment.Payment{OrderID: orderID, CustomerID: customerID, Status: payment.StatusCancelled,
		CausationID: cancelID, CreatedAt: t1, UpdatedAt: t1}
	cancelNoted := chargePending()
	cancelNoted.CancelCausationID, cancelNoted.UpdatedAt = cancelID, t1
	tests := []struct {
		name     string
		existing *payment.Payment
		cancel   bool // ORDER_CANCELLED, else SHIPMENT_FAILED
		want     *payment.Payment
	}{
		{"cancel with nothing: a tombstone", nil, true, tombstone},
		{"cancel of a pending charge: the cancel is noted", chargePending(), true, cancelNoted},
		{"a second cancel of a pending charge: nothing", cancelNoted, true, nil},
		{"cancel of a capture: refund intent", captured(), true, refundPending(payment.RefundOrderCancelled, cancelID)},
		{"shipment failed on a capture: refund intent", captured(), false, refundPending(payment.RefundShipmentFailed, shipFailID)},
		{"cancel while the refund is pending: nothing", refundPending(payment.RefundShipmentFailed, shipFailID), true, nil},
		{"shipment failed while the refund is pending: nothing", refundPending(payment.RefundOrderCancelled, cancelID), false, nil},
		{"cancel after the refund: nothing", refunded(payment.RefundShipmentFailed, shipFailID), true, nil},
		{"cancel of a FAILED charge: nothing", withStatus(payment.StatusFailed), true, nil},
		{"shipment failed with nothing: nothing", nil, false, nil},
		{"shipment failed on a pending charge: nothing", chargePending(), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *payment.Payment
			var err error
			if tt.cancel {
				got, err = payment.Cancel(clone(tt.existing), orderID, customerID, cancelID, refundID, t1)
			} else {
				got, err = payment.ShipmentFailed(clone(tt.existing), shipFailID, refundID, t1)
			}
			checkOutcome(t, got, nil, err, tt.want, nil, nil)
		})
	}
}

func TestRecordRefund(t *testing.T) {
	pending := refundPending(payment.RefundOrderCancelled, cancelID)
	got, ev, err := payment.RecordRefund(clone(pending), "re_1", t1)
	checkOutcome(t, got, ev, err, refunded(payment.RefundOrderCancelled, cancelID),
		payment.Refunded{PaymentID: paymentID, RefundID: refundID, Amount: eur(2500), Reason: payment.RefundOrderCancelled}, nil)
	if got.EventCausation(ev) != cancelID {
		t.Errorf("PAYMENT_REFUNDED answers %s, want the cancel %s", got.EventCausation(ev), cancelID)
	}
	got, ev, err = payment.RecordRefund(refunded(payment.RefundOrderCancelled, cancelID), "re_1", t1)
	checkOutcome(t, got, ev, err, nil, nil, nil)
	_, _, err = payment.RecordRefund(clone(pending), "", t1)
	checkErr(t, err, errAny)
}

func TestCancelNeedsIDsForATombstone(t *testing.T) {
	_, err := payment.Cancel(nil, orderID, "", cancelID, refundID, t1)
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
	if chargePending().Visible() {
		t.Error("a charge of unknown outcome is visible")
	}
	if !refundPending(payment.RefundOrderCancelled, cancelID).Visible() {
		t.Error("a capture with a refund pending is not visible")
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
	if p.PendingRefund != nil {
		r := *p.PendingRefund
		c.PendingRefund = &r
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
