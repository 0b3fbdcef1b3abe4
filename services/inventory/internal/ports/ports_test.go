package ports

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/inventory/internal/app"
	"github.com/sagasuite/sagasuite/services/inventory/internal/domain/stock"
)

var cause = app.Cause{EventID: events.NewID(), OrderID: events.NewID(), CustomerID: events.NewID(), At: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}

var lines = []stock.Line{{SKU: "SKU-1", Quantity: 2, UnitPriceMinor: 150}}

var address = stock.Address{Name: "N", Line1: "L", City: "C", CountryCode: "DE"}

// Every domain event encodes into a valid envelope of the right type, derived from the cause.
func TestEncodeEvent(t *testing.T) {
	tests := []struct {
		ev   stock.Event
		want eventsv1.EventType
	}{
		{stock.Reserved{ReservationID: app.ReservationID(cause.OrderID), Lines: lines, Total: stock.Money{AmountMinor: 300, Currency: "EUR"}, PaymentToken: "t", ShippingAddress: address},
			eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED},
		{stock.Rejected{SKU: "SKU-1", Requested: 2, Available: 0, Reason: stock.RejectUnknownSKU}, eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK},
		{stock.Rejected{SKU: "SKU-1", Requested: 2, Available: 1, Reason: stock.RejectInsufficientStock}, eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK},
		{stock.Rejected{SKU: "SKU-1", Requested: 2, Available: 1, Reason: stock.RejectPriceMismatch}, eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK},
		{stock.Rejected{SKU: "SKU-1", Requested: 2, Available: 1, Reason: stock.RejectCurrencyMismatch}, eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK},
		{stock.Deducted{ReservationID: app.ReservationID(cause.OrderID), Lines: lines, ShippingAddress: address}, eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED},
		{stock.Restored{ReservationID: app.ReservationID(cause.OrderID), Lines: lines, Reason: stock.RestorePaymentFailed}, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED},
		{stock.Restored{ReservationID: app.ReservationID(cause.OrderID), Lines: lines, Reason: stock.RestoreOrderCancelled, WasDeducted: true}, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED},
		{stock.Restored{ReservationID: app.ReservationID(cause.OrderID), Lines: lines, Reason: stock.RestoreShipmentFailed, WasDeducted: true}, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED},
	}
	for _, tt := range tests {
		env, err := EncodeEvent(cause, tt.ev)
		if err != nil {
			t.Fatalf("%+v: %v", tt.ev, err)
		}
		if env.GetType() != tt.want || env.GetEventId() != events.DeriveID(cause.EventID, tt.want) || env.GetOrderId() != cause.OrderID ||
			env.GetProducer() != Producer || !env.GetOccurredAt().AsTime().Equal(cause.At) {
			t.Fatalf("%+v encoded as %v", tt.ev, env)
		}
	}
	if _, err := EncodeEvent(cause, nil); !errors.Is(err, events.ErrInvalid) {
		t.Fatalf("nil event: %v", err)
	}
}

// Events inventory does not react to are acknowledged without touching the store.
func TestEventHandlerIgnoresOtherEvents(t *testing.T) {
	h := EventHandler(app.New(nil, nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	env, err := events.New(events.Meta{OrderID: cause.OrderID, CustomerID: cause.CustomerID, Producer: "order", CausationID: cause.EventID, OccurredAt: cause.At},
		&eventsv1.OrderCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h(context.Background(), env); err != nil {
		t.Fatal(err)
	}
}

func TestPageToken(t *testing.T) {
	if sku, err := decodePageToken(""); sku != "" || err != nil {
		t.Fatalf("empty token: %q %v", sku, err)
	}
	for _, bad := range []string{"%%%", "bm90IGEgc2t1"} { // the second decodes to "not a sku"
		_, err := decodePageToken(bad)
		var invalid *stock.InvalidError
		if !errors.As(err, &invalid) || invalid.Field != "page_token" {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestToStatus(t *testing.T) {
	s := NewGRPCServer(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tests := []struct {
		err  error
		want codes.Code
	}{
		{&stock.InvalidError{Field: "quantity", Reason: "must be positive"}, codes.InvalidArgument},
		{stock.ErrProductNotFound, codes.NotFound},
		{stock.ErrRequestConflict, codes.FailedPrecondition},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{errors.New("disk on fire"), codes.Internal},
	}
	for _, tt := range tests {
		st := status.Convert(s.toStatus(context.Background(), tt.err))
		if st.Code() != tt.want {
			t.Errorf("%v → %s, want %s", tt.err, st.Code(), tt.want)
		}
		if tt.want == codes.Internal && st.Message() != "internal error" {
			t.Errorf("internal detail leaked: %q", st.Message())
		}
	}
}

type failingRepo struct {
	app.Repository
	err error
}

func (r failingRepo) Apply(context.Context, app.Cause, []string, app.Decide) (bool, error) {
	return false, r.err
}

// Errors a retry cannot fix go to the dead-letter topic at once; others are retried.
func TestEventHandlerMarksUnfixableErrorsPermanent(t *testing.T) {
	env, err := events.New(events.Meta{OrderID: cause.OrderID, CustomerID: cause.CustomerID, Producer: "payment", CausationID: cause.EventID, OccurredAt: cause.At},
		&eventsv1.PaymentFailed{Reason: eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_DECLINED})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range []struct {
		err       error
		permanent bool
	}{
		{stock.ErrInvariant, true},
		{&stock.InvalidError{Field: "lines", Reason: "empty"}, true},
		{errors.New("connection refused"), false},
	} {
		got := EventHandler(app.New(failingRepo{err: tt.err}, nil), quiet)(context.Background(), env)
		if errors.Is(got, bus.ErrPermanent) != tt.permanent || !errors.Is(got, tt.err) && !errors.As(got, new(*stock.InvalidError)) {
			t.Errorf("%v → %v, want permanent=%v", tt.err, got, tt.permanent)
		}
	}
}
