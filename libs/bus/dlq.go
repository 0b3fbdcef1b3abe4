package bus

// Dead-letter tooling (DeadLetterQueue): list, show, redrive and drop the
// records a Consumer dead-lettered.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// Headers of a redriven record.
const (
	HeaderRedrivenAt   = "redriven-at"
	HeaderRedrivenFrom = "redriven-from"
)

// Dead-letter actions, as recorded in the audit topic.
const (
	DeadLetterRedrive = "redrive"
	DeadLetterDrop    = "drop"
)

var (
	// ErrDeadLetterNotFound: no record at that partition/offset (or with that event id).
	ErrDeadLetterNotFound = errors.New("dead letter not found")
	// ErrDeadLetterResolved: the dead letter was redriven or dropped already.
	ErrDeadLetterResolved = errors.New("dead letter already resolved")
	// ErrTopicNotFound: the topic does not exist on the cluster.
	ErrTopicNotFound = errors.New("topic does not exist")
)

// DeadLetterTopic is the dead-letter topic of a consumer group (the group's
// full name, topic prefix included), as the Consumer names it by default.
func DeadLetterTopic(group string) string { return group + ".dlq" }

// DeadLetterAuditTopic is the companion topic recording what was done with
// the dead letters of dlqTopic.
func DeadLetterAuditTopic(dlqTopic string) string { return dlqTopic + ".audit" }

// DeadLetter is one record of a dead-letter topic, its dlq-* headers parsed.
type DeadLetter struct {
	DLQTopic  string
	Partition int
	Offset    int64
	Key       string
	Timestamp time.Time // the DLQ record's Kafka timestamp
	Headers   map[string]string
	Value     []byte

	Error           string // dlq-error: why it was dead-lettered
	SourceTopic     string // dlq-topic: the full topic name, prefix included
	SourcePartition int
	SourceOffset    int64
	Group           string
	Attempts        int
	At              time.Time // dlq-at, else the record's timestamp

	EventID string // the id header, else the envelope's
	Type    string // the type header ("ORDER_CREATED"), else the envelope's
	OrderID string // the envelope's order id, else the key

	// Envelope is the decoded value; nil when it does not decode or validate
	// (DecodeError says why) — such records are dead letters too.
	Envelope    *eventsv1.Envelope
	DecodeError string

	// Resolution is the last action applied to it; nil while it is open.
	Resolution *DeadLetterAudit
}

// Ref is the dead letter's reference, "<dlq topic>/<partition>/<offset>": the
// audit topic's key and the redriven-from header.
func (d DeadLetter) Ref() string { return deadLetterRef(d.DLQTopic, d.Partition, d.Offset) }

func deadLetterRef(topic string, partition int, offset int64) string {
	// Kafka topic names cannot contain '/', so the reference splits cleanly.
	return topic + "/" + strconv.Itoa(partition) + "/" + strconv.FormatInt(offset, 10)
}

// DeadLetterAudit is one action on a dead letter: a line of the audit topic,
// and what the tools print for every message they act on.
type DeadLetterAudit struct {
	Action  string    `json:"action"`  // DeadLetterRedrive or DeadLetterDrop
	Applied bool      `json:"applied"` // false: a dry run, nothing changed
	At      time.Time `json:"at"`
	By      string    `json:"by,omitempty"`
	Reason  string    `json:"reason,omitempty"`

	Ref       string `json:"ref"` // <dlq topic>/<partition>/<offset>
	DLQTopic  string `json:"dlq_topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`

	Group       string `json:"group,omitempty"`
	SourceTopic string `json:"source_topic,omitempty"`
	EventID     string `json:"event_id,omitempty"`
	Type        string `json:"type,omitempty"`
	OrderID     string `json:"order_id,omitempty"`
	DLQError    string `json:"dlq_error,omitempty"`
	// RedrivenTo is the topic a redrive published to (the source topic).
	RedrivenTo string `json:"redriven_to,omitempty"`
}

// DeadLetterFilter selects dead letters; zero fields match everything.
type DeadLetterFilter struct {
	OrderID string
	Type    string // short ("ORDER_CREATED") or full enum name
	EventID string
	// Since (inclusive) and Until (exclusive) bound the dead-lettering time (dlq-at).
	Since, Until time.Time
	// IncludeResolved also returns redriven and dropped dead letters.
	IncludeResolved bool
}

// Match reports whether d passes the filter.
func (f DeadLetterFilter) Match(d DeadLetter) bool {
	if f.OrderID != "" && d.OrderID != f.OrderID {
		return false
	}
	if f.Type != "" && d.Type != strings.TrimPrefix(f.Type, "EVENT_TYPE_") {
		return false
	}
	if f.EventID != "" && d.EventID != f.EventID {
		return false
	}
	if !f.Since.IsZero() && d.At.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !d.At.Before(f.Until) {
		return false
	}
	return f.IncludeResolved || d.Resolution == nil
}

// DeadLetterAction says how to act on a dead letter.
type DeadLetterAction struct {
	// Apply does it; without it the action is a dry run.
	Apply bool
	// Force acts on a dead letter that was resolved already (a second redrive
	// publishes a second copy; the consumers' inboxes drop it if the first took effect).
	Force bool
	// Reason is recorded with the action (who asked, the ticket, why dropped).
	Reason string
}

// DeadLetterQueue reads and resolves one dead-letter topic: list its dead
// letters, show one, redrive it to its source topic or drop it. Safe for
// concurrent use; Close it when done.
//
// A dead letter is the original record as the consumer fetched it (key, value,
// headers incl. type, id and traceparent) plus the dlq-* headers the consumer
// added (reason, full source topic/partition/offset, group, attempts, time).
// The DLQ topic itself is never rewritten: Kafka cannot delete one record. So
// every action that changes something — a redrive or a drop — appends one JSON
// record to the companion topic "<dlq>.audit", keyed by the dead letter's
// reference "<dlq topic>/<partition>/<offset>". Reading the DLQ joins the
// audit topic and hides resolved dead letters unless asked for all. The audit
// topic keeps the whole history (no compaction): who did what, when and why.
// Both topics keep the cluster's retention: dead letters older than it are gone.
//
// Redrive re-publishes the record to its source topic as it was (same key, so
// the same partition and per-key order; same value; the original headers incl.
// traceparent and id) without the dlq-* headers and with a marker:
// redriven-at (RFC 3339) and redriven-from (the dead letter's reference). It
// goes through a Producer (acks=all, murmur2 like the original), whose send
// span joins the trace of the original traceparent: with tracing on, the trace
// id is kept and the span id becomes the redrive's; with tracing off the header
// is the original byte for byte. The consumers' inboxes make a redriven copy
// of an event that did take effect harmless. The order is: ensure the audit
// topic, publish, then audit; if the audit write fails after the publish, the
// error says so, and a second redrive publishes a duplicate the inbox drops.
//
// Everything is dry-run unless DeadLetterAction.Apply is set: a dry run checks
// what it can (the source topic exists, the dead letter is still open) and
// returns the audit record it would write, marked Applied=false.
type DeadLetterQueue struct {
	brokers  []string
	topic    string
	audit    string
	dialer   *kafka.Dialer
	security Security
	now      func() time.Time
	by       string

	mu       sync.Mutex
	producer *Producer
}

// DeadLetterOption tunes a DeadLetterQueue.
type DeadLetterOption func(*DeadLetterQueue)

// WithDeadLetterClock sets the clock for redriven-at and the audit time.
func WithDeadLetterClock(now func() time.Time) DeadLetterOption {
	return func(q *DeadLetterQueue) { q.now = now }
}

// WithDeadLetterOperator records who acts (a user or tool name) in the audit.
func WithDeadLetterOperator(name string) DeadLetterOption {
	return func(q *DeadLetterQueue) { q.by = name }
}

// NewDeadLetterQueue opens the dead-letter topic dlqTopic (full name, e.g.
// DeadLetterTopic("sagasuite-dev.order")). It does not connect yet.
func NewDeadLetterQueue(brokers []string, dlqTopic string, opts ...DeadLetterOption) (*DeadLetterQueue, error) {
	if len(brokers) == 0 {
		return nil, errors.New("bus: dead-letter queue needs brokers")
	}
	if dlqTopic == "" {
		return nil, errors.New("bus: dead-letter queue needs a topic")
	}
	q := &DeadLetterQueue{
		brokers: brokers, topic: dlqTopic, audit: DeadLetterAuditTopic(dlqTopic),
		dialer: &kafka.Dialer{Timeout: 10 * time.Second},
		now:    time.Now,
	}
	for _, o := range opts {
		o(q)
	}
	return q, nil
}

// Topic is the dead-letter topic; AuditTopic its companion.
func (q *DeadLetterQueue) Topic() string      { return q.topic }
func (q *DeadLetterQueue) AuditTopic() string { return q.audit }

// Close releases the producer, if one was opened.
func (q *DeadLetterQueue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.producer == nil {
		return nil
	}
	err := q.producer.Close()
	q.producer = nil
	return err
}

// List reads every partition of the dead-letter topic from its first to its
// end offset (no consumer group: nothing is committed, other readers are not
// disturbed) and returns the dead letters that match f, in partition and
// offset order.
func (q *DeadLetterQueue) List(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	parts, err := q.partitions(ctx, q.topic)
	if err != nil {
		return nil, err
	}
	resolutions, err := q.resolutions(ctx)
	if err != nil {
		return nil, err
	}
	var out []DeadLetter
	for _, p := range parts {
		err := q.scan(ctx, p, -1, func(m kafka.Message) bool {
			d := q.decode(m)
			d.Resolution = resolutions[d.Ref()]
			if f.Match(d) {
				out = append(out, d)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Get reads the dead letter at partition/offset, resolved or not.
func (q *DeadLetterQueue) Get(ctx context.Context, partition int, offset int64) (DeadLetter, error) {
	if partition < 0 || offset < 0 {
		return DeadLetter{}, fmt.Errorf("partition and offset must not be negative (got %d/%d)", partition, offset)
	}
	parts, err := q.partitions(ctx, q.topic)
	if err != nil {
		return DeadLetter{}, err
	}
	var part *kafka.Partition
	for i := range parts {
		if parts[i].ID == partition {
			part = &parts[i]
		}
	}
	if part == nil {
		return DeadLetter{}, fmt.Errorf("%w: %s has %d partitions, no partition %d", ErrDeadLetterNotFound, q.topic, len(parts), partition)
	}
	var found *DeadLetter
	err = q.scan(ctx, *part, offset, func(m kafka.Message) bool {
		if m.Offset == offset {
			d := q.decode(m)
			found = &d
		}
		return false // one record is all we want
	})
	if err != nil {
		return DeadLetter{}, err
	}
	if found == nil {
		return DeadLetter{}, fmt.Errorf("%w: no record at %s", ErrDeadLetterNotFound, deadLetterRef(q.topic, partition, offset))
	}
	resolutions, err := q.resolutions(ctx)
	if err != nil {
		return DeadLetter{}, err
	}
	found.Resolution = resolutions[found.Ref()]
	return *found, nil
}

// FindEvent returns the dead letters carrying event id (an event can be
// dead-lettered more than once: after a redrive that failed again), resolved
// or not, or ErrDeadLetterNotFound.
func (q *DeadLetterQueue) FindEvent(ctx context.Context, eventID string) ([]DeadLetter, error) {
	if eventID == "" {
		return nil, errors.New("event id must not be empty")
	}
	found, err := q.List(ctx, DeadLetterFilter{EventID: eventID, IncludeResolved: true})
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: no event %s in %s", ErrDeadLetterNotFound, eventID, q.topic)
	}
	return found, nil
}

// Redrive re-publishes d to its source topic (see the package comment on
// dead letters) and records it in the audit topic; a dry run unless a.Apply.
func (q *DeadLetterQueue) Redrive(ctx context.Context, d DeadLetter, a DeadLetterAction) (DeadLetterAudit, error) {
	rec := q.auditRecord(DeadLetterRedrive, d, a)
	if err := q.checkOpen(ctx, d, a); err != nil {
		return rec, err
	}
	if d.SourceTopic == "" {
		return rec, fmt.Errorf("%s has no %s header: cannot tell where to redrive it", d.Ref(), HeaderDLQTopic)
	}
	rec.RedrivenTo = d.SourceTopic
	// Check the target exists: the producer would retry an unknown topic for
	// a long time before failing, and a dry run should say so too.
	if _, err := q.partitions(ctx, d.SourceTopic); err != nil {
		return rec, fmt.Errorf("redrive %s: %w", d.Ref(), err)
	}
	if !a.Apply {
		return rec, nil
	}
	if err := q.ensureAuditTopic(ctx); err != nil {
		return rec, err // before the publish: a redrive we cannot record is not done
	}
	headers := make(map[string]string, len(d.Headers)+2)
	for k, v := range d.Headers {
		if !strings.HasPrefix(k, "dlq-") {
			headers[k] = v
		}
	}
	headers[HeaderRedrivenAt] = rec.At.Format(time.RFC3339Nano)
	headers[HeaderRedrivenFrom] = d.Ref()
	p := q.publisher()
	if err := p.Publish(ctx, Message{Topic: d.SourceTopic, Key: d.Key, Headers: headers, Value: d.Value}); err != nil {
		return rec, fmt.Errorf("redrive %s to %s: %w", d.Ref(), d.SourceTopic, err)
	}
	if err := q.record(ctx, rec); err != nil {
		return rec, fmt.Errorf("%s was redriven to %s but the audit record was not written (it still lists as open; a second redrive would publish it again): %w",
			d.Ref(), d.SourceTopic, err)
	}
	return rec, nil
}

// Drop marks d resolved without re-publishing it; a dry run unless a.Apply.
func (q *DeadLetterQueue) Drop(ctx context.Context, d DeadLetter, a DeadLetterAction) (DeadLetterAudit, error) {
	rec := q.auditRecord(DeadLetterDrop, d, a)
	if err := q.checkOpen(ctx, d, a); err != nil {
		return rec, err
	}
	if !a.Apply {
		return rec, nil
	}
	if err := q.ensureAuditTopic(ctx); err != nil {
		return rec, err
	}
	if err := q.record(ctx, rec); err != nil {
		return rec, fmt.Errorf("drop %s: %w", d.Ref(), err)
	}
	return rec, nil
}

// checkOpen refuses a resolved dead letter unless forced. It reads the audit
// topic again rather than trusting d.Resolution: d may be a copy listed before
// someone (or this caller) resolved it.
func (q *DeadLetterQueue) checkOpen(ctx context.Context, d DeadLetter, a DeadLetterAction) error {
	if d.DLQTopic != q.topic {
		return fmt.Errorf("dead letter %s is not from %s", d.Ref(), q.topic)
	}
	if a.Force {
		return nil
	}
	resolutions, err := q.resolutions(ctx)
	if err != nil {
		return err
	}
	if r := resolutions[d.Ref()]; r != nil {
		return fmt.Errorf("%w: %s was %s at %s (force to act again)", ErrDeadLetterResolved, d.Ref(),
			pastTense(r.Action), r.At.Format(time.RFC3339))
	}
	return nil
}

func pastTense(action string) string {
	switch action {
	case DeadLetterRedrive:
		return "redriven"
	case DeadLetterDrop:
		return "dropped"
	}
	return action
}

func (q *DeadLetterQueue) auditRecord(action string, d DeadLetter, a DeadLetterAction) DeadLetterAudit {
	return DeadLetterAudit{
		Action: action, Applied: a.Apply, At: q.now().UTC(), By: q.by, Reason: a.Reason,
		Ref: d.Ref(), DLQTopic: d.DLQTopic, Partition: d.Partition, Offset: d.Offset,
		Group: d.Group, SourceTopic: d.SourceTopic, EventID: d.EventID, Type: d.Type, OrderID: d.OrderID,
		DLQError: d.Error,
	}
}

// publisher is a producer without a topic prefix: dlq-topic and the audit
// topic are full names already.
func (q *DeadLetterQueue) publisher() *Producer {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.producer == nil {
		q.producer = NewProducer(q.brokers, WithSecurity(q.security))
	}
	return q.producer
}

// ensureAuditTopic creates the audit topic on first use, with the dead-letter
// topic's replication factor. It runs before the producer's first publish:
// the producer's metadata cache would not know a topic created after it (1 s).
func (q *DeadLetterQueue) ensureAuditTopic(ctx context.Context) error {
	_, err := q.partitions(ctx, q.audit)
	if !errors.Is(err, ErrTopicNotFound) {
		return err
	}
	rf := 1
	if parts, err := q.partitions(ctx, q.topic); err == nil && len(parts) > 0 && len(parts[0].Replicas) > 0 {
		rf = len(parts[0].Replicas)
	}
	// One partition keeps the audit in the order it was written.
	if err := EnsureTopicsWith(ctx, q.brokers, q.security, TopicSpec{Name: q.audit, Partitions: 1, ReplicationFactor: rf}); err != nil {
		return fmt.Errorf("create audit topic: %w", err)
	}
	return nil
}

// record appends rec to the audit topic (ensureAuditTopic first).
func (q *DeadLetterQueue) record(ctx context.Context, rec DeadLetterAudit) error {
	value, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return q.publisher().Publish(ctx, Message{Topic: q.audit, Key: rec.Ref, Value: value,
		Headers: map[string]string{HeaderContentType: "application/json"}})
}

// resolutions reads the audit topic: the last applied action per reference.
// A missing audit topic means nothing was resolved yet.
func (q *DeadLetterQueue) resolutions(ctx context.Context) (map[string]*DeadLetterAudit, error) {
	parts, err := q.partitions(ctx, q.audit)
	if errors.Is(err, ErrTopicNotFound) {
		return map[string]*DeadLetterAudit{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]*DeadLetterAudit{}
	var bad error
	for _, p := range parts {
		err := q.scan(ctx, p, -1, func(m kafka.Message) bool {
			var rec DeadLetterAudit
			if err := json.Unmarshal(m.Value, &rec); err != nil || rec.Ref == "" {
				// A record we cannot read must not silently reopen or hide a
				// dead letter: fail loudly.
				bad = fmt.Errorf("audit topic %s: record at %d/%d is not an audit record: %v", q.audit, m.Partition, m.Offset, err)
				return false
			}
			if rec.Applied {
				out[rec.Ref] = &rec
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		if bad != nil {
			return nil, bad
		}
	}
	return out, nil
}

// decode parses a DLQ record's headers and value.
func (q *DeadLetterQueue) decode(m kafka.Message) DeadLetter {
	h := fromKafkaHeaders(m.Headers)
	d := DeadLetter{
		DLQTopic: q.topic, Partition: m.Partition, Offset: m.Offset, Key: string(m.Key),
		Timestamp: m.Time, Headers: h, Value: m.Value,
		Error: h[HeaderDLQError], SourceTopic: h[HeaderDLQTopic], Group: h[HeaderDLQGroup],
		EventID: h[HeaderEventID], Type: h[HeaderType], OrderID: string(m.Key),
		SourcePartition: -1, SourceOffset: -1,
	}
	if v, err := strconv.Atoi(h[HeaderDLQPartition]); err == nil {
		d.SourcePartition = v
	}
	if v, err := strconv.ParseInt(h[HeaderDLQOffset], 10, 64); err == nil {
		d.SourceOffset = v
	}
	if v, err := strconv.Atoi(h[HeaderDLQAttempts]); err == nil {
		d.Attempts = v
	}
	d.At = m.Time
	if at, err := time.Parse(time.RFC3339Nano, h[HeaderDLQAt]); err == nil {
		d.At = at
	}
	env, err := events.Unmarshal(m.Value)
	if err != nil {
		d.DecodeError = err.Error()
		return d
	}
	d.Envelope = env
	if d.EventID == "" {
		d.EventID = env.GetEventId()
	}
	if d.Type == "" {
		d.Type = events.TypeName(env.GetType())
	}
	if env.GetOrderId() != "" {
		d.OrderID = env.GetOrderId()
	}
	return d
}

// partitions returns topic's partitions, or ErrTopicNotFound.
func (q *DeadLetterQueue) partitions(ctx context.Context, topic string) ([]kafka.Partition, error) {
	parts, err := Partitions(ctx, q.brokers, q.dialer, topic)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, topic)
	}
	return parts, nil
}

// scan reads partition p from offset from (-1: its first offset) up to its
// end offset as of the call, handing each record to fn until fn returns false.
func (q *DeadLetterQueue) scan(ctx context.Context, p kafka.Partition, from int64, fn func(kafka.Message) bool) error {
	_, _, err := ScanPartition(ctx, q.dialer, p, ScanRange{From: from, To: -1}, fn)
	return err
}
