package capture_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
)

var at = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func orderCreated(t *testing.T, orderID string) *eventsv1.Envelope {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: orderID, CustomerID: "0194f5c3-0000-7000-8000-000000000001",
		Producer: "order", CausationID: "0194f5c3-0000-7000-8000-0000000000aa", OccurredAt: at},
		&eventsv1.OrderCreated{Total: &commonv1.Money{AmountMinor: 1250, Currency: "EUR"},
			Lines:              []*commonv1.LineItem{{Sku: "SKU-1", Quantity: 1, UnitPriceMinor: 1250}},
			ShippingAddress:    &commonv1.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"},
			PaymentMethodToken: "tok_visa", Deadline: timestamppb.New(at.Add(time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func message(t *testing.T, env *eventsv1.Envelope) bus.Message {
	t.Helper()
	m, err := bus.EncodeEnvelope(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRoundTripKeepsEveryFieldAndStableBytes(t *testing.T) {
	env := orderCreated(t, "0194f5c3-0000-7000-8000-000000000010")
	m := message(t, env)
	good := capture.FromMessage(m, 2, 41, at, "")
	bad := capture.FromMessage(bus.Message{Topic: "p.orders", Key: "k", Value: []byte{0xff, 0x01}}, 0, 7, at, "p.")
	if good.Error != "" || len(good.Envelope) == 0 {
		t.Fatalf("envelope not decoded: %+v", good)
	}
	if bad.Error == "" || !bytes.Equal(bad.Value, []byte{0xff, 0x01}) || bad.Topic != "orders" {
		t.Fatalf("a value that is no envelope must keep its bytes and say why: %+v", bad)
	}
	for _, name := range []string{"rec.jsonl", "rec.jsonl.gz"} {
		path := filepath.Join(t.TempDir(), name)
		h := capture.NewHeader("test", "v0", at)
		if err := capture.WriteFile(path, h, []capture.Record{good, bad}); err != nil {
			t.Fatal(err)
		}
		gotH, recs, err := capture.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if gotH.Version != capture.Version || gotH.Format != capture.Format || !gotH.CapturedAt.Equal(at) {
			t.Fatalf("%s: header %+v", name, gotH)
		}
		if len(recs) != 2 || recs[0].Offset != 41 || recs[0].Partition != 2 || recs[1].Error == "" {
			t.Fatalf("%s: records %+v", name, recs)
		}
		back, err := recs[0].Event()
		if err != nil || !proto.Equal(back, env) {
			t.Fatalf("%s: envelope after the round trip %v (err %v), want %v", name, back, err, env)
		}
		again, err := recs[0].Message("")
		if err != nil || !bytes.Equal(again.Value, m.Value) || again.Headers[bus.HeaderType] != "ORDER_CREATED" {
			t.Fatalf("%s: re-encoded message differs: %+v (err %v)", name, again, err)
		}
	}
	// The same envelope always gives the same line.
	for i := 0; i < 20; i++ {
		b, err := capture.MarshalEnvelope(env)
		if err != nil || !bytes.Equal(b, good.Envelope) {
			t.Fatalf("envelope JSON not stable: %s vs %s", b, good.Envelope)
		}
	}
}

// testdata/v1.jsonl was written by format version 1 and is kept forever:
// every later reader must still read it.
func TestReadsVersion1Forever(t *testing.T) {
	h, recs, err := capture.ReadFile("testdata/v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 1 || len(recs) != 2 {
		t.Fatalf("header %+v, %d records", h, len(recs))
	}
	env, err := recs[0].Event()
	if err != nil {
		t.Fatal(err)
	}
	if env.GetType() != eventsv1.EventType_EVENT_TYPE_ORDER_CREATED || env.GetOrderCreated().GetTotal().GetAmountMinor() != 1250 {
		t.Fatalf("v1 envelope read as %v", env)
	}
	if recs[1].Error == "" || len(recs[1].Value) == 0 {
		t.Fatalf("v1 undecodable record: %+v", recs[1])
	}
}

func TestRejectsWhatItCannotRead(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"empty":     "",
		"no format": `{"version":1}` + "\n",
		"future":    `{"format":"sagasuite-capture","version":99}` + "\n",
		"bad line":  `{"format":"sagasuite-capture","version":1}` + "\n{not json\n",
		"no topic":  `{"format":"sagasuite-capture","version":1}` + "\n{\"offset\":1}\n",
	}
	for name, text := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".jsonl")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := capture.ReadFile(path); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
}

// Scan reads a real Kafka's partitions without a group: only the records of
// the chosen orders, in offset order, up to the end offsets at its start.
func TestScanReadsChosenOrdersFromKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix := testenv.UniqueName("capture") + "."
	brokers := testenv.Brokers()
	if err := bus.EnsureTopics(ctx, brokers, bus.TopicSpec{Name: prefix + events.TopicOrders, Partitions: 3, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	p := bus.NewProducer(brokers)
	defer p.Close()
	ids := []string{"0194f5c3-0000-7000-8000-000000000011", "0194f5c3-0000-7000-8000-000000000012", "0194f5c3-0000-7000-8000-000000000013"}
	var msgs []bus.Message
	for _, id := range ids {
		m := message(t, orderCreated(t, id))
		m.Topic = prefix + m.Topic
		msgs = append(msgs, m)
	}
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	var got []capture.Record
	ranges, err := capture.Scan(ctx, capture.Source{Brokers: brokers, Prefix: prefix, Topics: []string{events.TopicOrders},
		Range: bus.ScanRange{From: -1, To: -1}, OrderIDs: map[string]bool{ids[0]: true, ids[2]: true}},
		func(r capture.Record) error { got = append(got, r); return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 3 {
		t.Fatalf("ranges %+v, want the topic's 3 partitions", ranges)
	}
	if len(got) != 2 {
		t.Fatalf("got %d records, want the 2 chosen orders': %+v", len(got), got)
	}
	for _, r := range got {
		if r.Topic != events.TopicOrders || (r.Key != ids[0] && r.Key != ids[2]) || r.Error != "" || r.Header(bus.HeaderType) != "ORDER_CREATED" {
			t.Errorf("record %+v", r)
		}
	}
	// A missing topic is an error naming it, and is not created.
	_, err = capture.Scan(ctx, capture.Source{Brokers: brokers, Prefix: prefix, Topics: []string{"nope"}, Range: bus.ScanRange{From: -1, To: -1}},
		func(capture.Record) error { return nil }, nil)
	if err == nil || !strings.Contains(err.Error(), prefix+"nope") {
		t.Fatalf("missing topic: %v", err)
	}
}
