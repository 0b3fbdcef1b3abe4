package replay

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// rec is a record on topic/partition@offset holding an envelope.
func rec(t *testing.T, topic string, partition int, offset int64, env *eventsv1.Envelope) capture.Record {
	t.Helper()
	b, err := capture.MarshalEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	return capture.Record{Topic: topic, Partition: partition, Offset: offset, Timestamp: env.GetOccurredAt().AsTime().UnixMilli(),
		Key: env.GetOrderId(), Envelope: b}
}

func env(id, order, producer, cause string, typ eventsv1.EventType, at time.Duration) *eventsv1.Envelope {
	return &eventsv1.Envelope{EventId: id, OrderId: order, Producer: producer, CausationId: cause, Type: typ,
		OccurredAt: timestamppb.New(t0.Add(at))}
}

func planIDs(t *testing.T, service string, recs []capture.Record) ([]string, []time.Duration) {
	t.Helper()
	plan, err := Plan(service, recs)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var at []time.Duration
	for _, d := range plan {
		e, err := d.Record.Event()
		if err != nil {
			t.Fatal(err)
		}
		ids, at = append(ids, e.GetEventId()), append(at, d.At.Sub(t0))
	}
	return ids, at
}

// A record the service reacted to is delivered at its reaction's time; one
// it did not react to (ORDER_CANCELLED after the refund) is not delivered
// before a reaction to an earlier event of the same order, so the refund
// keeps its recorded cause. Records of other topics are not delivered.
func TestPlanDefersUnansweredRecordsBehindEarlierReactions(t *testing.T) {
	ms := time.Millisecond
	recs := []capture.Record{
		rec(t, "shipments.v1", 0, 0, env("sf", "o1", "shipping", "x", eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED, 0)),
		rec(t, "orders.v1", 2, 0, env("oc", "o1", "order", "sf", eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED, 1*ms)),
		rec(t, "payments.v1", 1, 0, env("pr", "o1", "payment", "sf", eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED, 3*ms)),
		rec(t, "notifications.v1", 0, 0, env("ns", "o1", "notification", "oc", eventsv1.EventType_EVENT_TYPE_NOTIFICATION_SENT, 4*ms)),
	}
	ids, at := planIDs(t, "payment", recs)
	if len(ids) != 2 || ids[0] != "sf" || ids[1] != "oc" || at[0] != 3*ms || at[1] != 3*ms {
		t.Fatalf("plan %v at %v; want [sf oc] at [3ms 3ms]", ids, at)
	}
}

// Different keys of one partition go in the order the service reacted to
// them (the consumer works on keys concurrently); one key keeps its offset
// order, and the clock never goes backwards.
func TestPlanOrdersKeysByReactionAndKeepsOneKeysOrder(t *testing.T) {
	ms := time.Millisecond
	recs := []capture.Record{
		rec(t, "inventory.v1", 0, 0, env("a1", "oA", "inventory", "x", eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED, 0)),
		rec(t, "inventory.v1", 0, 1, env("b1", "oB", "inventory", "y", eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED, 1*ms)),
		rec(t, "inventory.v1", 0, 2, env("a2", "oA", "inventory", "x", eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED, 2*ms)),
		rec(t, "payments.v1", 0, 0, env("pa", "oA", "payment", "a1", eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED, 10*ms)),
		rec(t, "payments.v1", 0, 1, env("pb", "oB", "payment", "b1", eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED, 5*ms)),
		// a2's reaction is recorded earlier than a1's: one key's order wins, the clock holds.
		rec(t, "payments.v1", 0, 2, env("pa2", "oA", "payment", "a2", eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED, 7*ms)),
	}
	ids, at := planIDs(t, "payment", recs)
	want, wantAt := []string{"b1", "a1", "a2"}, []time.Duration{5 * ms, 10 * ms, 10 * ms}
	for i := range want {
		if len(ids) != len(want) || ids[i] != want[i] || at[i] != wantAt[i] {
			t.Fatalf("plan %v at %v; want %v at %v", ids, at, want, wantAt)
		}
	}
}

func TestPlanRefusesDuplicateOffsetsAndUnknownServices(t *testing.T) {
	r := rec(t, "orders.v1", 0, 0, env("e", "o", "order", "c", eventsv1.EventType_EVENT_TYPE_ORDER_CREATED, 0))
	if _, err := Plan("inventory", []capture.Record{r, r}); err == nil {
		t.Error("a recording holding one offset twice was accepted")
	}
	if _, err := Plan("nosuch", nil); err == nil {
		t.Error("an unknown service was accepted")
	}
}

// The order service's plan holds its stimuli at their recorded instants:
// the create first, a customer cancel before a record handled after it, a
// deadline cancel where the clock passed it; a failure's ORDER_CANCELLED is
// a reaction, not a stimulus. A cancel without its ORDER_CREATED is refused.
func TestPlanOfTheOrderServiceInterleavesItsStimuli(t *testing.T) {
	ms := time.Millisecond
	cancelled := func(id, cause string, reason eventsv1.CancelReason, at time.Duration) *eventsv1.Envelope {
		e := env(id, "o1", "order", cause, eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED, at)
		e.Payload = &eventsv1.Envelope_OrderCancelled{OrderCancelled: &eventsv1.OrderCancelled{Reason: reason}}
		return e
	}
	recs := []capture.Record{
		rec(t, "inventory.v1", 0, 0, env("sr", "o1", "inventory", "oc", eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED, 2*ms)),
		rec(t, "shipments.v1", 0, 0, env("sc", "o1", "shipping", "sr", eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED, 9*ms)),
		rec(t, "orders.v1", 0, 0, env("oc", "o1", "order", "req-1", eventsv1.EventType_EVENT_TYPE_ORDER_CREATED, 1*ms)),
		rec(t, "orders.v1", 0, 1, cancelled("cx", "req-2", eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED, 5*ms)),
		rec(t, "orders.v1", 0, 2, cancelled("dl", "o1", eventsv1.CancelReason_CANCEL_REASON_TIMEOUT, 7*ms)),
		rec(t, "orders.v1", 0, 3, cancelled("pf", "sc", eventsv1.CancelReason_CANCEL_REASON_PAYMENT_FAILED, 10*ms)),
	}
	plan, err := Plan("order", recs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range plan {
		if d.Stimulus != nil {
			got = append(got, fmt.Sprintf("%s@%s", d.Stimulus.Kind, d.At.Sub(t0)))
			continue
		}
		e, err := d.Record.Event()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s@%s", e.GetEventId(), d.At.Sub(t0)))
	}
	// sc caused pf at 10ms: delivered then.
	want := "create@1ms sr@2ms cancel@5ms deadline@7ms sc@10ms"
	if strings.Join(got, " ") != want {
		t.Fatalf("plan %q; want %q", strings.Join(got, " "), want)
	}
	if _, err := Plan("order", recs[3:4]); err == nil || !strings.Contains(err.Error(), "without its ORDER_CREATED") {
		t.Errorf("a cancel without its ORDER_CREATED: %v", err)
	}
}
