package events_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

func meta() events.Meta {
	return events.Meta{
		OrderID:     "0193a8a4-6b5e-7c1e-9a3b-1f2e3d4c5b6a",
		CustomerID:  "0193a8a4-6b5e-7c1e-9a3b-1f2e3d4c5b6b",
		Producer:    "order",
		CausationID: "0193a8a4-6b5e-7c1e-9a3b-1f2e3d4c5b6c",
		OccurredAt:  time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC),
	}
}

func TestEveryTypeHasATopicAndRoundTripsItsName(t *testing.T) {
	for v, name := range eventsv1.EventType_name {
		typ := eventsv1.EventType(v)
		if typ == eventsv1.EventType_EVENT_TYPE_UNSPECIFIED {
			if _, err := events.TopicOf(typ); err == nil {
				t.Errorf("TopicOf(UNSPECIFIED) should fail")
			}
			continue
		}
		if _, err := events.TopicOf(typ); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		back, err := events.ParseType(events.TypeName(typ))
		if err != nil || back != typ {
			t.Errorf("ParseType(TypeName(%s)) = %v, %v", name, back, err)
		}
	}
	if _, err := events.ParseType("NO_SUCH_EVENT"); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("ParseType of an unknown name: %v, want ErrInvalid", err)
	}
}

func TestDeriveIDIsDeterministicPerCauseAndType(t *testing.T) {
	a := events.DeriveID("cause-1", eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED)
	if b := events.DeriveID("cause-1", eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED); a != b {
		t.Fatalf("same cause and type gave %s and %s", a, b)
	}
	if c := events.DeriveID("cause-1", eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK); c == a {
		t.Fatalf("different types gave the same id %s", a)
	}
	if d := events.DeriveID("cause-2", eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED); d == a {
		t.Fatalf("different causes gave the same id %s", a)
	}
}

func TestNewInfersTypeFromPayloadAndValidates(t *testing.T) {
	env, err := events.New(meta(), &eventsv1.OrderCompleted{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if env.GetType() != eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED {
		t.Errorf("type = %v, want ORDER_COMPLETED", env.GetType())
	}
	if env.GetEventId() != events.DeriveID(meta().CausationID, env.GetType()) {
		t.Errorf("event id %s is not derived from the causation id", env.GetEventId())
	}
	if env.GetOrderCompleted() == nil {
		t.Errorf("payload not set")
	}
	b, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	back, err := events.Unmarshal(b)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !proto.Equal(back, env) {
		t.Errorf("round trip changed the envelope")
	}
}

func TestInvalidEnvelopesAreRejected(t *testing.T) {
	noCause := meta()
	noCause.CausationID = ""
	if _, err := events.New(noCause, &eventsv1.OrderCompleted{}); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("New without causation id: %v, want ErrInvalid", err)
	}
	if _, err := events.New(meta(), &eventsv1.Envelope{}); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("New with a non-payload message: %v, want ErrInvalid", err)
	}

	env, err := events.New(meta(), &eventsv1.OrderCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	mismatched := proto.Clone(env).(*eventsv1.Envelope)
	mismatched.Type = eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED
	noPayload := proto.Clone(env).(*eventsv1.Envelope)
	noPayload.Payload = nil
	for name, bad := range map[string]*eventsv1.Envelope{"type/payload mismatch": mismatched, "no payload": noPayload} {
		if err := events.Validate(bad); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := events.Unmarshal([]byte{0xff, 0xff, 0xff}); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("Unmarshal of garbage: %v, want ErrInvalid", err)
	}
}
