package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The OpenTelemetry messaging semantic-convention metrics (Prometheus:
// messaging_client_sent_messages_total, messaging_client_consumed_messages_total,
// messaging_process_duration_seconds), labelled with messaging.system=kafka,
// messaging.destination.name, messaging.operation.name and our event type
// (sagasuite.event_type); error.type is set when the operation failed.
const (
	MetricSentMessages     = "messaging.client.sent.messages"
	MetricConsumedMessages = "messaging.client.consumed.messages"
	MetricProcessDuration  = "messaging.process.duration"

	attrEventType = "sagasuite.event_type"
)

type messagingMetrics struct {
	sent     metric.Int64Counter
	consumed metric.Int64Counter
	process  metric.Float64Histogram
}

// newMessagingMetrics takes the instruments from the global meter provider
// as it is now (Setup installs it before producers and consumers are made).
func newMessagingMetrics() messagingMetrics {
	meter := otel.Meter(tracerName)
	sent, _ := meter.Int64Counter(MetricSentMessages, metric.WithUnit("{message}"),
		metric.WithDescription("messages the producer attempted to send (error.type set when Kafka did not acknowledge them)"))
	consumed, _ := meter.Int64Counter(MetricConsumedMessages, metric.WithUnit("{message}"),
		metric.WithDescription("messages handed to this consumer's handler (once per delivery, not per retry)"))
	process, _ := meter.Float64Histogram(MetricProcessDuration, metric.WithUnit("s"),
		metric.WithDescription("handler runs (every attempt), error.type set when the handler failed"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	return messagingMetrics{sent: sent, consumed: consumed, process: process}
}

func messagingAttrs(operation, topic, eventType string, extra ...attribute.KeyValue) []attribute.KeyValue {
	return append([]attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.name", operation),
		attribute.String("messaging.destination.name", topic),
		attribute.String(attrEventType, eventType),
	}, extra...)
}

// sentMessages counts one send attempt of msgs (topics already prefixed).
func (m messagingMetrics) sentMessages(ctx context.Context, msgs []Message, err error) {
	var extra []attribute.KeyValue
	if err != nil {
		extra = append(extra, attribute.String("error.type", errorType(err)))
	}
	for _, msg := range msgs {
		m.sent.Add(ctx, 1, metric.WithAttributes(messagingAttrs("send", msg.Topic, msg.Headers[HeaderType], extra...)...))
	}
}

func (m messagingMetrics) consumedMessage(ctx context.Context, group, topic, eventType string) {
	m.consumed.Add(ctx, 1, metric.WithAttributes(messagingAttrs("receive", topic, eventType,
		attribute.String("messaging.consumer.group.name", group))...))
}

func (m messagingMetrics) processed(ctx context.Context, group, topic, eventType string, err error, d time.Duration) {
	extra := []attribute.KeyValue{attribute.String("messaging.consumer.group.name", group)}
	if err != nil {
		extra = append(extra, attribute.String("error.type", errorType(err)))
	}
	m.process.Record(ctx, d.Seconds(), metric.WithAttributes(messagingAttrs("process", topic, eventType, extra...)...))
}

// errorType is a low-cardinality error.type: the class the consumer acts on,
// or the Go type of the first error under the fmt.Errorf wrapping (the one
// that says what failed), never the message, which holds ids.
func errorType(err error) string {
	switch {
	case IsPermanent(err):
		return "permanent"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	for {
		name := fmt.Sprintf("%T", err)
		inner := errors.Unwrap(err)
		if (name != "*fmt.wrapError" && name != "*fmt.wrapErrors") || inner == nil {
			return name
		}
		err = inner
	}
}
