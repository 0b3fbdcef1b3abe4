// Package bus moves saga events over Kafka (segmentio/kafka-go): a Producer
// that publishes envelopes with acks=all, and a Consumer that runs a handler
// per event in a consumer group, commits offsets only after the handler's effect
// is durable, retries with backoff, dead-letters what cannot be processed and
// drains on shutdown. Delivery is at-least-once; inboxes make effects exactly-once.
package bus

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// Kafka header names. Type and id travel as headers so tools (and the DLQ
// reader) can route and dedupe without decoding the payload.
const (
	HeaderType        = "type"
	HeaderEventID     = "id"
	HeaderProducer    = "producer"
	HeaderContentType = "content-type"
	HeaderTraceparent = "traceparent"

	// Set on dead-lettered copies.
	HeaderDLQError     = "dlq-error"
	HeaderDLQTopic     = "dlq-topic"
	HeaderDLQPartition = "dlq-partition"
	HeaderDLQOffset    = "dlq-offset"
	HeaderDLQGroup     = "dlq-group"
	HeaderDLQAttempts  = "dlq-attempts"
	HeaderDLQAt        = "dlq-at"

	contentTypeProtobuf = "application/protobuf"
)

// Message is one Kafka record as the bus and the outbox see it.
type Message struct {
	Topic   string
	Key     string
	Headers map[string]string
	Value   []byte
}

// EncodeEnvelope turns an envelope into the record to publish: its producer's
// topic, key = order id, headers with type, id and the trace context of ctx.
func EncodeEnvelope(ctx context.Context, env *eventsv1.Envelope) (Message, error) {
	if err := events.Validate(env); err != nil {
		return Message{}, err
	}
	topic, err := events.TopicOf(env.GetType())
	if err != nil {
		return Message{}, err
	}
	value, err := proto.MarshalOptions{Deterministic: true}.Marshal(env)
	if err != nil {
		return Message{}, fmt.Errorf("encode envelope %s: %w", env.GetEventId(), err)
	}
	headers := map[string]string{
		HeaderType:        events.TypeName(env.GetType()),
		HeaderEventID:     env.GetEventId(),
		HeaderProducer:    env.GetProducer(),
		HeaderContentType: contentTypeProtobuf,
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(headers))
	return Message{Topic: topic, Key: env.GetOrderId(), Headers: headers, Value: value}, nil
}
