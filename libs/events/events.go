// Package events is the saga's event vocabulary on top of the generated
// envelope: which topic each event type lives on, how event ids are made, and
// how an envelope is built and checked. It knows nothing of Kafka or SQL.
package events

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"buf.build/go/protovalidate"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// SchemaVersion is written into every envelope this code produces.
const SchemaVersion = 1

// One topic per owning service, keyed by order id (DESIGN.md, "Events").
const (
	TopicOrders        = "orders.v1"
	TopicInventory     = "inventory.v1"
	TopicPayments      = "payments.v1"
	TopicShipments     = "shipments.v1"
	TopicNotifications = "notifications.v1"
)

// AllTopics lists every saga topic, for topic creation at start-up.
var AllTopics = []string{TopicOrders, TopicInventory, TopicPayments, TopicShipments, TopicNotifications}

// ErrInvalid marks an envelope that can never be processed: consumers send it
// to the dead-letter topic at once instead of retrying.
var ErrInvalid = errors.New("invalid event")

const typePrefix = "EVENT_TYPE_"

// TypeName is the short wire name of an event type ("ORDER_CREATED"), used in
// the Kafka `type` header and in logs.
func TypeName(t eventsv1.EventType) string {
	return strings.TrimPrefix(t.String(), typePrefix)
}

// ParseType turns a short ("ORDER_CREATED") or full enum name into a type.
func ParseType(name string) (eventsv1.EventType, error) {
	full := name
	if !strings.HasPrefix(full, typePrefix) {
		full = typePrefix + full
	}
	v, ok := eventsv1.EventType_value[full]
	if !ok || v == 0 {
		return 0, fmt.Errorf("%w: unknown event type %q", ErrInvalid, name)
	}
	return eventsv1.EventType(v), nil
}

// TopicOf is the topic an event type is published on: its producer's topic.
func TopicOf(t eventsv1.EventType) (string, error) {
	switch t {
	case eventsv1.EventType_EVENT_TYPE_ORDER_CREATED, eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED,
		eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED:
		return TopicOrders, nil
	case eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED, eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK,
		eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED:
		return TopicInventory, nil
	case eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED, eventsv1.EventType_EVENT_TYPE_PAYMENT_FAILED,
		eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED:
		return TopicPayments, nil
	case eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED, eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED,
		eventsv1.EventType_EVENT_TYPE_SHIPMENT_CANCELLED:
		return TopicShipments, nil
	case eventsv1.EventType_EVENT_TYPE_NOTIFICATION_SENT:
		return TopicNotifications, nil
	}
	return "", fmt.Errorf("%w: no topic for event type %v", ErrInvalid, t)
}

// idNamespace scopes derived event ids to sagasuite (UUIDv5 namespace).
var idNamespace = uuid.MustParse("7b0e7f4e-6a43-4d0c-9a51-5a6a0f8b2c11")

// NewID returns a fresh UUIDv7 (time-ordered) for things with no cause to derive from.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// DeriveID is the id of the event of type t caused by causationID. The same
// cause and type always give the same id, so a handler that runs twice (a
// redelivery, a replay) emits the same event, and inboxes downstream drop the copy.
func DeriveID(causationID string, t eventsv1.EventType) string {
	return uuid.NewSHA1(idNamespace, []byte(causationID+"/"+TypeName(t))).String()
}

// Meta is everything of an envelope but its payload.
type Meta struct {
	OrderID     string
	CustomerID  string
	Producer    string
	CausationID string    // the event or command that caused this one; required
	OccurredAt  time.Time // from the handler's injected clock
}

var payloadOneof = (&eventsv1.Envelope{}).ProtoReflect().Descriptor().Oneofs().ByName("payload")

// New builds an envelope around payload (e.g. *eventsv1.OrderCreated): the type
// follows from the payload's message, the id from the causation id and type.
func New(m Meta, payload proto.Message) (*eventsv1.Envelope, error) {
	if m.CausationID == "" {
		return nil, fmt.Errorf("%w: causation id is required to derive the event id", ErrInvalid)
	}
	env := &eventsv1.Envelope{
		OrderId:       m.OrderID,
		CustomerId:    m.CustomerID,
		OccurredAt:    timestamppb.New(m.OccurredAt.UTC()),
		Producer:      m.Producer,
		CausationId:   m.CausationID,
		SchemaVersion: SchemaVersion,
	}
	field, err := payloadField(payload)
	if err != nil {
		return nil, err
	}
	env.ProtoReflect().Set(field, protoreflect.ValueOfMessage(payload.ProtoReflect()))
	env.Type = typeOfField(field)
	env.EventId = DeriveID(m.CausationID, env.Type)
	if err := Validate(env); err != nil {
		return nil, err
	}
	return env, nil
}

// payloadField finds the oneof case whose message type is payload's.
func payloadField(payload proto.Message) (protoreflect.FieldDescriptor, error) {
	if payload == nil {
		return nil, fmt.Errorf("%w: nil payload", ErrInvalid)
	}
	name := payload.ProtoReflect().Descriptor().FullName()
	fields := payloadOneof.Fields()
	for i := 0; i < fields.Len(); i++ {
		if f := fields.Get(i); f.Message() != nil && f.Message().FullName() == name {
			return f, nil
		}
	}
	return nil, fmt.Errorf("%w: %s is not an event payload", ErrInvalid, name)
}

// typeOfField maps the oneof case order_created to EVENT_TYPE_ORDER_CREATED.
func typeOfField(f protoreflect.FieldDescriptor) eventsv1.EventType {
	return eventsv1.EventType(eventsv1.EventType_value[typePrefix+strings.ToUpper(string(f.Name()))])
}

// Validate checks the schema rules (protovalidate) and that the payload case
// matches the declared type. Errors wrap ErrInvalid.
func Validate(env *eventsv1.Envelope) error {
	if err := protovalidate.Validate(env); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	field := env.ProtoReflect().WhichOneof(payloadOneof)
	if field == nil {
		return fmt.Errorf("%w: envelope %s has no payload", ErrInvalid, env.GetEventId())
	}
	if got := typeOfField(field); got != env.GetType() {
		return fmt.Errorf("%w: envelope %s declares type %s but carries %s",
			ErrInvalid, env.GetEventId(), TypeName(env.GetType()), field.Name())
	}
	return nil
}

// Unmarshal decodes and fully validates an envelope from its wire bytes
// (tools, tests; consumers use Decode).
func Unmarshal(b []byte) (*eventsv1.Envelope, error) {
	env, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if err := Validate(env); err != nil {
		return nil, err
	}
	return env, nil
}

// Decode decodes an envelope and checks only what a consumer needs to route
// it: an event id, an order id, a known type and a payload of that type. The
// schema rules (protovalidate) are checked once, by the producer (Validate in
// bus.EncodeEnvelope): running them again on every consumed event cost 5–10 %
// of each consumer's CPU.
func Decode(b []byte) (*eventsv1.Envelope, error) {
	env := &eventsv1.Envelope{}
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, fmt.Errorf("%w: decode envelope: %v", ErrInvalid, err)
	}
	if env.GetEventId() == "" || env.GetOrderId() == "" {
		return nil, fmt.Errorf("%w: envelope without event id or order id", ErrInvalid)
	}
	if _, err := TopicOf(env.GetType()); err != nil {
		return nil, err
	}
	field := env.ProtoReflect().WhichOneof(payloadOneof)
	if field == nil {
		return nil, fmt.Errorf("%w: envelope %s has no payload", ErrInvalid, env.GetEventId())
	}
	if got := typeOfField(field); got != env.GetType() {
		return nil, fmt.Errorf("%w: envelope %s declares type %s but carries %s",
			ErrInvalid, env.GetEventId(), TypeName(env.GetType()), field.Name())
	}
	return env, nil
}
