package ports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
	"github.com/sagasuite/sagasuite/services/notification/internal/sagatest"
)

func TestRecordCommandCarriesEveryEventType(t *testing.T) {
	order, customer := testenv.IDFor("order"), testenv.IDFor("customer")
	start := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	envs := sagatest.Envelopes(t, order, customer, start, sagatest.AllTypes(t))
	seen := map[eventsv1.EventType]bool{}
	for i, env := range envs {
		seen[env.GetType()] = true
		cmd, err := RecordCommand(env)
		if err != nil {
			t.Fatalf("%s: %v", env.GetType(), err)
		}
		e := cmd.Event
		if e.ID != env.GetEventId() || e.OrderID != order || e.CustomerID != customer ||
			string(e.Type) != events.TypeName(env.GetType()) || !e.OccurredAt.Equal(start.Add(time.Duration(i)*time.Second)) ||
			cmd.Producer != env.GetProducer() || cmd.CausationID != env.GetCausationId() {
			t.Fatalf("%s: command %+v does not carry the envelope", env.GetType(), cmd)
		}
		decoded := &eventsv1.Envelope{}
		if err := proto.Unmarshal(cmd.Envelope, decoded); err != nil || !proto.Equal(decoded, env) {
			t.Fatalf("%s: recorded envelope does not round-trip: %v", env.GetType(), err)
		}
		switch env.GetType() {
		case eventsv1.EventType_EVENT_TYPE_ORDER_CREATED:
			if e.OrderTotal != (notification.Money{AmountMinor: 4999, Currency: "EUR"}) {
				t.Errorf("order total %+v", e.OrderTotal)
			}
		case eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED:
			if e.CancelReason != notification.ReasonShipmentFailed {
				t.Errorf("cancel reason %v", e.CancelReason)
			}
		case eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED:
			if e.RefundAmount != (notification.Money{AmountMinor: 4999, Currency: "EUR"}) {
				t.Errorf("refund %+v", e.RefundAmount)
			}
		}
	}
	if len(seen) != len(eventsv1.EventType_name)-1 {
		t.Fatalf("saw %d event types, want all %d", len(seen), len(eventsv1.EventType_name)-1)
	}
}

func TestCancelReasonsMapOneToOne(t *testing.T) {
	seen := map[notification.CancelReason]eventsv1.CancelReason{}
	for v := range eventsv1.CancelReason_name {
		r := eventsv1.CancelReason(v)
		got := cancelReason(r)
		if r == eventsv1.CancelReason_CANCEL_REASON_UNSPECIFIED {
			if got != notification.ReasonUnspecified {
				t.Errorf("%v -> %v", r, got)
			}
			continue
		}
		if got == notification.ReasonUnspecified {
			t.Errorf("%v has no reason in words", r)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%v and %v map to the same reason", r, other)
		}
		seen[got] = r
	}
}

func TestRecordCommandRejectsUnknownSchemaVersion(t *testing.T) {
	env := sagatest.Envelopes(t, testenv.IDFor("o"), testenv.IDFor("c"), time.Now(), sagatest.AllTypes(t)[:1])[0]
	env.SchemaVersion = events.SchemaVersion + 1
	if _, err := RecordCommand(env); !errors.Is(err, events.ErrInvalid) {
		t.Fatalf("schema version %d: %v, want ErrInvalid", env.SchemaVersion, err)
	}
}

func TestToStatus(t *testing.T) {
	s := NewGRPCServer(app.Application{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tests := []struct {
		err   error
		code  codes.Code
		field string
	}{
		{&app.FieldError{Field: "customer_id", Problem: "is required"}, codes.InvalidArgument, "customer_id"},
		{fmt.Errorf("list: %w", app.ErrInvalidPageToken), codes.InvalidArgument, "page_token"},
		{fmt.Errorf("log: %w", app.ErrNotFound), codes.NotFound, ""},
		{context.Canceled, codes.Canceled, ""},
		{context.DeadlineExceeded, codes.DeadlineExceeded, ""},
		{errors.New("cassandra: no hosts"), codes.Unavailable, ""},
	}
	for _, tt := range tests {
		st := status.Convert(s.toStatus(context.Background(), tt.err))
		if st.Code() != tt.code {
			t.Errorf("%v -> %v, want %v", tt.err, st.Code(), tt.code)
		}
		if tt.field != "" && (len(st.Message()) < len(tt.field) || st.Message()[:len(tt.field)] != tt.field) {
			t.Errorf("%v -> message %q does not name %s", tt.err, st.Message(), tt.field)
		}
	}
}
