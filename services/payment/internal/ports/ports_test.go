package ports

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/payment/internal/app"
	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

const (
	orderID    = "0190a000-0000-7000-8000-000000000001"
	customerID = "0190a000-0000-7000-8000-000000000003"
	causeID    = "0190a000-0000-7000-8000-000000000004"
)

// Every event payment emits encodes to a valid envelope of its type, caused
// by the triggering event, with every reason mapped.
func TestEncode(t *testing.T) {
	p := &payment.Payment{OrderID: orderID, CustomerID: customerID, PaymentID: app.PaymentIDFor(orderID)}
	money := payment.Money{AmountMinor: 100, Currency: "EUR"}
	tests := []struct {
		ev   payment.Event
		want eventsv1.EventType
	}{
		{payment.Processed{PaymentID: p.PaymentID, Amount: money}, eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED},
		{payment.Refunded{PaymentID: p.PaymentID, RefundID: app.RefundIDFor(orderID), Amount: money, Reason: payment.RefundShipmentFailed}, eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED},
		{payment.Refunded{PaymentID: p.PaymentID, RefundID: app.RefundIDFor(orderID), Amount: money, Reason: payment.RefundOrderCancelled}, eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED},
	}
	for _, r := range []payment.FailureReason{payment.FailureDeclined, payment.FailureInsufficientFunds,
		payment.FailureInvalidPaymentMethod, payment.FailureProcessorUnavailable} {
		tests = append(tests, struct {
			ev   payment.Event
			want eventsv1.EventType
		}{payment.Failed{Reason: r, DeclineCode: "x"}, eventsv1.EventType_EVENT_TYPE_PAYMENT_FAILED})
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%#v", tt.ev), func(t *testing.T) {
			env, err := Encode(p, tt.ev, causeID, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if env.GetType() != tt.want || env.GetCausationId() != causeID || env.GetProducer() != Producer ||
				env.GetEventId() != events.DeriveID(causeID, tt.want) {
				t.Fatalf("envelope %v", env)
			}
		})
	}
	if _, err := Encode(p, payment.Failed{Reason: "MADE_UP"}, causeID, time.Now()); err == nil {
		t.Fatal("an unmapped failure reason was encoded")
	}
}

// fakeRepo runs changes on "no payment yet" and counts them.
type fakeRepo struct{ updates int }

func (r *fakeRepo) Update(_ context.Context, _, _ string, change app.ChangeFunc) (bool, error) {
	r.updates++
	_, _, err := change(nil)
	return err == nil, err
}
func (r *fakeRepo) Get(context.Context, string) (*payment.Payment, error) {
	return nil, payment.ErrNotFound
}
func (r *fakeRepo) ListByCustomer(context.Context, string, *app.Cursor, int) ([]*payment.Payment, error) {
	return nil, nil
}
func (r *fakeRepo) ClaimExpired(context.Context, int) ([]*payment.Payment, error) { return nil, nil }

type approveAll struct{}

func (approveAll) Charge(context.Context, string, payment.Money, string) (string, error) {
	return "ch", nil
}
func (approveAll) Refund(context.Context, string, string, payment.Money) (string, error) {
	return "re", nil
}
func (approveAll) ChargeStatus(context.Context, string) (payment.ChargeOutcome, bool, error) {
	return payment.ChargeOutcome{}, false, nil
}
func (approveAll) RefundStatus(context.Context, string) (string, bool, error) { return "", false, nil }

func TestEventHandlerRoutesIgnoresAndDeadLettersInvalidInput(t *testing.T) {
	repo := &fakeRepo{}
	handle := EventHandler(app.New(app.Deps{Repo: repo, Gateway: approveAll{}, Encode: Encode, Now: time.Now}))
	ctx := context.Background()
	ignored := []*eventsv1.Envelope{
		{Type: eventsv1.EventType_EVENT_TYPE_ORDER_CREATED},
		{Type: eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED},
		{Type: eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED},
		{Type: eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK},
	}
	for _, env := range ignored {
		if err := handle(ctx, env); err != nil || repo.updates != 0 {
			t.Fatalf("%s: err %v, %d updates; want ignored", env.GetType(), err, repo.updates)
		}
	}
	// A STOCK_RESERVED without a total (validation would stop it earlier; the
	// handler must not panic or retry it either): dead-lettered at once.
	bad := &eventsv1.Envelope{EventId: causeID, Type: eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED, OrderId: orderID, CustomerId: customerID,
		Payload: &eventsv1.Envelope_StockReserved{StockReserved: &eventsv1.StockReserved{PaymentMethodToken: "tok_visa"}}}
	if err := handle(ctx, bad); !errors.Is(err, bus.ErrPermanent) {
		t.Fatalf("invalid STOCK_RESERVED: %v, want a permanent error", err)
	}
	routed := []*eventsv1.Envelope{
		{EventId: causeID, Type: eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED, OrderId: orderID, CustomerId: customerID},
		{EventId: causeID, Type: eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED, OrderId: orderID, CustomerId: customerID},
	}
	for i, env := range routed {
		if err := handle(ctx, env); err != nil || repo.updates != i+2 {
			t.Fatalf("%s: err %v, %d updates", env.GetType(), err, repo.updates)
		}
	}
}

func TestToStatus(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{payment.ErrNotFound, codes.NotFound},
		{fmt.Errorf("wrapped: %w", payment.Invalid("page_token", "bad")), codes.InvalidArgument},
		{payment.ErrInvalid, codes.InvalidArgument},
		{context.Canceled, codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{errors.New("dial tcp 10.0.0.1: secret detail"), codes.Internal},
	}
	for _, tt := range tests {
		st := status.Convert(toStatus(tt.err))
		if st.Code() != tt.want {
			t.Errorf("toStatus(%v) = %s, want %s", tt.err, st.Code(), tt.want)
		}
		if tt.want == codes.Internal && st.Message() != "internal error" {
			t.Errorf("Internal leaks %q", st.Message())
		}
	}
	if msg := status.Convert(toStatus(payment.Invalid("page_token", "bad"))).Message(); msg != "page_token: bad" {
		t.Errorf("InvalidArgument message %q does not name the field first", msg)
	}
}
