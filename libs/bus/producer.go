package bus

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

const tracerName = "github.com/sagasuite/sagasuite/libs/bus"

// Publisher is what publishes records: a *Producer, or a fake in tests.
// Outbox relays depend on this rather than on the producer.
type Publisher interface {
	Publish(ctx context.Context, msgs ...Message) error
}

// Producer publishes records synchronously with acks from all in-sync replicas.
// Safe for concurrent use.
type Producer struct {
	w           *kafka.Writer
	topicPrefix string
	metrics     messagingMetrics
}

// ProducerOption tunes a Producer.
type ProducerOption func(*Producer)

// WithTopicPrefix publishes every record to prefix+topic: several suites
// (tests, tenants) can then share one cluster without seeing each other.
func WithTopicPrefix(prefix string) ProducerOption {
	return func(p *Producer) { p.topicPrefix = prefix }
}

// NewProducer makes a producer for the given bootstrap brokers.
func NewProducer(brokers []string, opts ...ProducerOption) *Producer {
	p := &Producer{w: &kafka.Writer{
		Addr: kafka.TCP(brokers...),
		// kafka-go defaults to acks=0: a broker crash would lose "sent" events.
		RequiredAcks: kafka.RequireAll,
		// Java-compatible key hashing, so other tools agree on partitions.
		Balancer: &kafka.Murmur2Balancer{},
		// Each WriteMessages call becomes one batch per partition at once: the
		// default 1 s batch timeout would add a second to every saga hop, and
		// the callers (relay, tests) already hand over whole batches.
		BatchTimeout: 50 * time.Microsecond,
		BatchSize:    1000,
		MaxAttempts:  10,
		// Topics are created on purpose at start-up (EnsureTopics).
		AllowAutoTopicCreation: false,
		// Own transport with a short metadata TTL: the shared default caches
		// metadata for 6 s, so a topic created a moment ago (EnsureTopics at
		// start-up) would be "unknown" to the writer until then.
		Transport: &kafka.Transport{MetadataTTL: time.Second},
		// Kafka's answer (partition, offset) reaches a record's send span
		// only here; WriteMessages blocks on it, so it runs before span.End.
		Completion: recordSendResults,
	}, metrics: newMessagingMetrics()}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Publish writes msgs and returns when Kafka has acknowledged all of them, or
// an error (then any of them may or may not have been written: retry the lot;
// consumers deduplicate). Records for one key keep their order.
func (p *Producer) Publish(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	tracer := otel.Tracer(tracerName)
	records := make([]kafka.Message, len(msgs))
	spans := make([]trace.Span, len(msgs))
	sent := make([]Message, len(msgs))
	for i, m := range msgs {
		m.Topic = p.topicPrefix + m.Topic
		sent[i] = m
		// Each record's span continues the trace it was created in (the gRPC
		// call or handler that wrote it to the outbox), so a saga's trace runs
		// producer → Kafka → consumer even though a relay sends it later.
		parent := ctx
		if m.Headers[HeaderTraceparent] != "" {
			parent = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(m.Headers))
		}
		// OpenTelemetry messaging conventions: "send <destination>", kind
		// PRODUCER; partition and offset are added once Kafka has answered.
		_, span := tracer.Start(parent, "send "+m.Topic, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				semconv.MessagingSystemKafka,
				semconv.MessagingOperationName("send"),
				semconv.MessagingOperationTypeSend,
				semconv.MessagingDestinationName(m.Topic),
				semconv.MessagingMessageID(m.Headers[HeaderEventID]),
				semconv.MessagingKafkaMessageKey(m.Key),
				attribute.String("sagasuite.event_type", m.Headers[HeaderType]),
				attribute.String("sagasuite.order_id", m.Key),
			))
		spans[i] = span
		headers := make(map[string]string, len(m.Headers)+1)
		for k, v := range m.Headers {
			headers[k] = v
		}
		otel.GetTextMapPropagator().Inject(trace.ContextWithSpan(ctx, span), propagation.MapCarrier(headers))
		records[i] = kafka.Message{Topic: m.Topic, Key: []byte(m.Key), Value: m.Value, Headers: toKafkaHeaders(headers), WriterData: span}
	}
	err := p.w.WriteMessages(ctx, records...)
	p.metrics.sentMessages(ctx, sent, err)
	for _, span := range spans {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
		}
		span.End()
	}
	if err != nil {
		return fmt.Errorf("publish %d records: %w", len(msgs), err)
	}
	return nil
}

// recordSendResults puts where Kafka stored each record on its send span
// (kafka-go hands the records of one partition batch to Writer.Completion
// with partition and offset set; WriterData carries the span).
func recordSendResults(records []kafka.Message, err error) {
	if err != nil {
		return // nothing was stored; Publish records the error
	}
	for _, r := range records {
		if span, ok := r.WriterData.(trace.Span); ok {
			span.SetAttributes(
				semconv.MessagingDestinationPartitionID(strconv.Itoa(r.Partition)),
				semconv.MessagingKafkaOffset(int(r.Offset)))
		}
	}
}

// Close flushes and closes the underlying writer and its connections.
func (p *Producer) Close() error {
	err := p.w.Close()
	if t, ok := p.w.Transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
	return err
}

func toKafkaHeaders(h map[string]string) []kafka.Header {
	out := make([]kafka.Header, 0, len(h))
	for k, v := range h {
		out = append(out, kafka.Header{Key: k, Value: []byte(v)})
	}
	return out
}

func fromKafkaHeaders(hs []kafka.Header) map[string]string {
	out := make(map[string]string, len(hs))
	for _, h := range hs {
		out[h.Key] = string(h.Value)
	}
	return out
}
