package replay

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/outbox"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// deliverer publishes recorded records to the replay stack's Kafka and waits
// until the service has processed each.
type deliverer struct {
	service    string
	brokers    []string
	prefix     string
	group      string
	client     *kafka.Client
	partitions map[string]int // topic (with prefix) → partition count
	ops        string         // the service's ops address (outbox admin API)
	token      suite.TokenSource
	http       *http.Client
	hasOutbox  bool

	// The order service's stimuli go through its gRPC API.
	st       *devstack.Stack
	conn     *grpc.ClientConn
	orders   orderv1.OrderServiceClient
	deadline time.Duration // the order service's order deadline now (0: unknown)
}

// maxPoll is the longest pause between two checks whether a delivery was
// processed. Short, because the checks' latency is most of a replay's time
// (a handled record is typically done within a few ms); the checks are
// cheap next to the handler's work.
const maxPoll = 2 * time.Millisecond

func newDeliverer(st *devstack.Stack, service string) (*deliverer, error) {
	brokers := strings.Split(st.Servers.Kafka, ",")
	prefix := st.Servers.TopicPrefix
	d := &deliverer{service: service, brokers: brokers, prefix: prefix, group: prefix + service,
		client:     &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second, Transport: &kafka.Transport{}},
		partitions: map[string]int{}, ops: st.Ops.Of(service), token: st.ToolToken("sagactl-replay"),
		http:      &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}},
		hasOutbox: len(Produces[service]) > 0, st: st}
	if service == suite.Order {
		conn, err := grpc.NewClient(st.GRPC.Of(service), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(suite.PerRPCCredentials(d.token)))
		if err != nil {
			return nil, fmt.Errorf("replay: dial %s: %w", service, err)
		}
		d.conn, d.orders = conn, orderv1.NewOrderServiceClient(conn)
	}
	names := make([]string, 0, len(Consumes[service]))
	for _, t := range Consumes[service] {
		names = append(names, prefix+t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	parts, err := bus.Partitions(ctx, brokers, bus.Security{}.Dialer(), names...)
	if err != nil {
		return nil, fmt.Errorf("replay: partitions of %v: %w", names, err)
	}
	for _, p := range parts {
		d.partitions[p.Topic]++
	}
	return d, nil
}

func (d *deliverer) close() {
	if t, ok := d.http.Transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
	if d.conn != nil {
		d.conn.Close()
	}
	if t, ok := d.client.Transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
}

// deliver publishes rec to its recorded topic and partition and waits until
// the service's group committed past it and its outbox holds nothing
// unpublished (so what the handler emitted is on Kafka).
func (d *deliverer) deliver(ctx context.Context, rec capture.Record, bound time.Duration) error {
	msg, err := rec.Message(d.prefix)
	if err != nil {
		return err
	}
	if n := d.partitions[msg.Topic]; rec.Partition < 0 || rec.Partition >= n {
		return fmt.Errorf("recorded on partition %d, but topic %s has %d partitions here", rec.Partition, msg.Topic, n)
	}
	headers := make([]kafka.Header, 0, len(rec.Headers))
	for _, h := range rec.Headers {
		headers = append(headers, kafka.Header{Key: h.Key, Value: []byte(h.Value)})
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	res, err := d.client.Produce(ctx, &kafka.ProduceRequest{Topic: msg.Topic, Partition: rec.Partition, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(kafka.Record{Time: rec.Time(), Key: kafka.NewBytes([]byte(msg.Key)),
			Value: kafka.NewBytes(msg.Value), Headers: headers})})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		return fmt.Errorf("publish to %s/%d: %w", msg.Topic, rec.Partition, err)
	}
	offset := res.BaseOffset

	// Poll: the bus commits right after each handled record, the relay
	// publishes within its poll interval; the bound is for a hang only.
	var last string
	for wait := time.Millisecond; ; wait = min(wait*2, maxPoll) {
		done, why, err := d.processed(ctx, msg.Topic, rec.Partition, offset)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w after %s waiting for %s to process it (published at offset %d): %s", errTimeout, bound, d.service, offset, last)
		case <-time.After(wait):
		}
	}
}

// stimulate sends one order-service stimulus (a CreateOrder or CancelOrder
// call, or — the clock already past the deadline — waits for the deadline
// sweep to cancel the order) and waits until the outbox published what it
// emitted.
func (d *deliverer) stimulate(ctx context.Context, s Stimulus, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	id := s.Event.GetOrderId()
	switch s.Kind {
	case StimulusCreate:
		ttl, err := OrderDeadline(s.Event)
		if err != nil {
			return err
		}
		if ttl != d.deadline {
			if err := d.st.SetOrderDeadline(ctx, ttl); err != nil {
				return fmt.Errorf("give the order service the recorded deadline %s: %w", ttl, err)
			}
			d.deadline = ttl
		}
		resp, err := d.orders.CreateOrder(ctx, CreateOrderRequest(s.Event), grpc.WaitForReady(true))
		if err != nil {
			return fmt.Errorf("CreateOrder (request %s): %w", s.Event.GetCausationId(), err)
		}
		if got := resp.GetOrder().GetOrderId(); got != id {
			return fmt.Errorf("CreateOrder with request %s made order %s, the recording has %s (the order id no longer derives from the request id the same way)",
				s.Event.GetCausationId(), got, id)
		}
	case StimulusCancel:
		if _, err := d.orders.CancelOrder(ctx, CancelOrderRequest(s.Event), grpc.WaitForReady(true)); err != nil {
			return fmt.Errorf("CancelOrder (request %s): %w", s.Event.GetCausationId(), err)
		}
	case StimulusDeadline:
		// The sweep runs on its own ticker; the order leaves PENDING once
		// it saw the clock past the deadline.
		for wait := time.Millisecond; ; wait = min(wait*2, maxPoll) {
			resp, err := d.orders.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: id}, grpc.WaitForReady(true))
			if err == nil && resp.GetOrder().GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w after %s waiting for the deadline sweep to cancel order %s (last GetOrder: status %s, error %v)",
					errTimeout, bound, id, resp.GetOrder().GetStatus(), err)
			case <-time.After(wait):
			}
		}
	default:
		return fmt.Errorf("unknown stimulus %q", s.Kind)
	}
	for wait := time.Millisecond; ; wait = min(wait*2, maxPoll) {
		done, why, err := d.outboxEmpty(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w after %s waiting for the order service to publish what %s emitted: %s", errTimeout, bound, s.Kind, why)
		case <-time.After(wait):
		}
	}
}

// processed reports whether the group's committed offset on topic/partition
// passed offset and the outbox has no row left to publish; why says what is
// still missing.
func (d *deliverer) processed(ctx context.Context, topic string, partition int, offset int64) (bool, string, error) {
	resp, err := d.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: d.group, Topics: map[string][]int{topic: {partition}}})
	if err != nil {
		return false, "offset fetch: " + err.Error(), nil // the broker may be busy; retried until the bound
	}
	committed := int64(-1)
	for _, p := range resp.Topics[topic] {
		if p.Partition == partition && p.Error == nil {
			committed = p.CommittedOffset
		}
	}
	if committed <= offset {
		return false, fmt.Sprintf("group %s committed offset %d", d.group, committed), nil
	}
	return d.outboxEmpty(ctx)
}

// outboxEmpty reports whether the service has no outbox row left to publish
// (true for a service without outbox). Parked rows (no longer pending) are
// looked for once at the end (noneParked): one admin call per check instead
// of two, the checks being much of a replay's time.
func (d *deliverer) outboxEmpty(ctx context.Context) (bool, string, error) {
	if !d.hasOutbox {
		return true, "", nil
	}
	pending, err := d.outboxRows(ctx, "pending")
	if err != nil {
		return false, err.Error(), nil
	}
	if pending > 0 {
		return false, fmt.Sprintf("%d outbox rows not yet published", pending), nil
	}
	return true, "", nil
}

// noneParked fails when the service parked outbox rows (Kafka refused them
// after retries): their events are missing from what it emitted.
func (d *deliverer) noneParked(ctx context.Context) error {
	if !d.hasOutbox {
		return nil
	}
	parked, err := d.outboxRows(ctx, "parked")
	if err != nil {
		return err
	}
	if parked > 0 {
		return fmt.Errorf("%s parked %d outbox rows (Kafka refused them); see its log", d.service, parked)
	}
	return nil
}

// outboxRows counts the service's outbox rows in state (pending or parked)
// through its ops port's admin API.
func (d *deliverer) outboxRows(ctx context.Context, state string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.ops+outbox.AdminListPath+"?state="+state+"&limit=1", nil)
	if err != nil {
		return 0, err
	}
	if err := suite.Authorize(req, d.token); err != nil {
		return 0, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("outbox admin: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("outbox admin: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("outbox admin: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var list outbox.AdminList
	if err := json.Unmarshal(body, &list); err != nil {
		return 0, fmt.Errorf("outbox admin: %w", err)
	}
	return len(list.Rows), nil
}

// traceHeaders carry span ids chosen at random by the tracer: no replay can
// reproduce them, so emitted records drop them.
var traceHeaders = []string{bus.HeaderTraceparent, "tracestate", "baggage"}

// collect scans the topics the service produces to and returns its records
// ordered by topic, key, then emission order, normalised (see
// Result.Emitted), and the ranges read.
func (d *deliverer) collect(ctx context.Context, topics []string) ([]capture.Record, []capture.Range, error) {
	if len(topics) == 0 {
		return []capture.Record{}, nil, nil
	}
	var out []capture.Record
	ranges, err := capture.Scan(ctx, capture.Source{Brokers: d.brokers, Prefix: d.prefix, Topics: topics,
		Range: bus.ScanRange{From: -1, To: -1}}, func(r capture.Record) error {
		out = append(out, normalise(r))
		return nil
	}, nil)
	if err != nil {
		return nil, nil, err
	}
	slices.SortStableFunc(out, func(a, b capture.Record) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Key, b.Key), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	slices.SortFunc(ranges, func(a, b capture.Range) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	if out == nil {
		out = []capture.Record{}
	}
	return out, ranges, nil
}

// normalise replaces what the broker or the tracer chose: the timestamp
// becomes the event's occurred_at, trace headers go.
func normalise(r capture.Record) capture.Record {
	r.Headers = slices.DeleteFunc(r.Headers, func(h capture.KafkaHeader) bool { return slices.Contains(traceHeaders, h.Key) })
	if len(r.Headers) == 0 {
		r.Headers = nil
	}
	if env, err := r.Event(); err == nil && env.GetOccurredAt() != nil {
		r.Timestamp = env.GetOccurredAt().AsTime().UnixMilli()
	}
	return r
}
