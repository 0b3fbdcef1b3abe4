package replaydiff_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/replaydiff"
)

var at = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const (
	orderA   = "0194f5c3-0000-7000-8000-000000000010"
	orderB   = "0194f5c3-0000-7000-8000-000000000020"
	customer = "0194f5c3-0000-7000-8000-000000000001"
)

func newEvent(t *testing.T, orderID, producer, causation string, step int, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: orderID, CustomerID: customer, Producer: producer,
		CausationID: causation, OccurredAt: at.Add(time.Duration(step) * time.Second)}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// saga is one order's successful saga, each event caused by the one before:
// created, stock reserved, payment processed, shipment created, completed.
func saga(t *testing.T, orderID, requestID string) []*eventsv1.Envelope {
	t.Helper()
	lines := []*commonv1.LineItem{{Sku: "SKU-1", Quantity: 1, UnitPriceMinor: 1250}}
	total := &commonv1.Money{AmountMinor: 1250, Currency: "EUR"}
	address := &commonv1.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"}
	created := newEvent(t, orderID, "order", requestID, 0, &eventsv1.OrderCreated{Total: total, Lines: lines,
		ShippingAddress:    address,
		PaymentMethodToken: "tok_visa", Deadline: timestamppb.New(at.Add(time.Minute))})
	reserved := newEvent(t, orderID, "inventory", created.GetEventId(), 1, &eventsv1.StockReserved{
		ReservationId: "0194f5c3-0000-7000-8000-0000000000b1", Lines: lines, Total: total, PaymentMethodToken: "tok_visa", ShippingAddress: address})
	paid := newEvent(t, orderID, "payment", reserved.GetEventId(), 2, &eventsv1.PaymentProcessed{
		PaymentId: "0194f5c3-0000-7000-8000-0000000000c1", Amount: &commonv1.Money{AmountMinor: 1250, Currency: "EUR"}})
	shipped := newEvent(t, orderID, "shipping", paid.GetEventId(), 3, &eventsv1.ShipmentCreated{
		ShipmentId: "0194f5c3-0000-7000-8000-0000000000d1", Carrier: "dhl", TrackingNumber: "T1"})
	completed := newEvent(t, orderID, "order", shipped.GetEventId(), 4, &eventsv1.OrderCompleted{})
	return []*eventsv1.Envelope{created, reserved, paid, shipped, completed}
}

// record is env as the recorder would write it; offset and partition are
// broker details the comparison must not look at.
func record(t *testing.T, env *eventsv1.Envelope, partition int, offset int64) capture.Record {
	t.Helper()
	m, err := bus.EncodeEnvelope(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	m.Headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0" + string(rune('0'+offset%10))
	return capture.FromMessage(m, partition, offset, at.Add(time.Duration(offset)*time.Millisecond), "")
}

func records(t *testing.T, envs []*eventsv1.Envelope, partition int, offset int64) []capture.Record {
	out := make([]capture.Record, len(envs))
	for i, env := range envs {
		out[i] = record(t, env, partition, offset+int64(i))
	}
	return out
}

func twoSagas(t *testing.T) (a, b []*eventsv1.Envelope) {
	return saga(t, orderA, "0194f5c3-0000-7000-8000-0000000000aa"), saga(t, orderB, "0194f5c3-0000-7000-8000-0000000000bb")
}

func mustEmpty(t *testing.T, rep replaydiff.Report) {
	t.Helper()
	if !rep.Empty() {
		t.Fatalf("want no differences, got:\n%s", rep)
	}
}

func TestIdenticalIsEmptyAndBrokerFieldsIgnored(t *testing.T) {
	a, b := twoSagas(t)
	want := append(records(t, a, 0, 0), records(t, b, 1, 0)...)
	// Other partitions, offsets, timestamps and traceparents: still equal.
	got := append(records(t, b, 3, 100), records(t, a, 2, 500)...)
	rep := replaydiff.Compare(want, got, replaydiff.Options{})
	mustEmpty(t, rep)
	if rep.Counts.Matched != 10 || rep.OrdersCompared != 2 {
		t.Fatalf("counts %+v, orders %d", rep.Counts, rep.OrdersCompared)
	}
	if s := rep.String(); !strings.HasPrefix(s, "no differences: 2 orders, 10 events matched") {
		t.Fatalf("report: %q", s)
	}
}

func TestOnePlantedFieldChangeIsReportedWithItsPath(t *testing.T) {
	a, b := twoSagas(t)
	want := append(records(t, a, 0, 0), records(t, b, 0, 5)...)
	changed := proto.Clone(a[2]).(*eventsv1.Envelope)
	changed.GetPaymentProcessed().Amount.AmountMinor = 1300
	gotA := append(append([]*eventsv1.Envelope{}, a[:2]...), changed)
	gotA = append(gotA, a[3:]...)
	got := append(records(t, gotA, 0, 0), records(t, b, 0, 5)...)

	rep := replaydiff.Compare(want, got, replaydiff.Options{})
	if len(rep.Orders) != 1 || rep.Orders[0].OrderID != orderA || len(rep.Orders[0].Changed) != 1 {
		t.Fatalf("want one changed event of order A, got:\n%s", rep)
	}
	ch := rep.Orders[0].Changed[0]
	if ch.Event.ID != a[2].GetEventId() || ch.Event.Type != "PAYMENT_PROCESSED" {
		t.Fatalf("changed event %+v", ch.Event)
	}
	wantField := replaydiff.FieldDiff{Path: "payment_processed.amount.amount_minor", Want: "1250", Got: "1300"}
	if len(ch.Fields) != 1 || ch.Fields[0] != wantField {
		t.Fatalf("fields %+v, want exactly %+v", ch.Fields, wantField)
	}
	if rep.Counts.Changed != 1 || rep.Differences() != 1 {
		t.Fatalf("counts %+v", rep.Counts)
	}
	for _, line := range []string{"order " + orderA, "changed PAYMENT_PROCESSED " + a[2].GetEventId(),
		"    payment_processed.amount.amount_minor: 1250 → 1300"} {
		if !strings.Contains(rep.String(), line+"\n") {
			t.Fatalf("report lacks %q:\n%s", line, rep)
		}
	}
}

func TestFieldPathsForListsTimestampsOneofsAndIgnore(t *testing.T) {
	a, _ := twoSagas(t)
	created := proto.Clone(a[0]).(*eventsv1.Envelope)
	oc := created.GetOrderCreated()
	oc.Lines = append(oc.Lines, &commonv1.LineItem{Sku: "SKU-2", Quantity: 2, UnitPriceMinor: 100})
	oc.Lines[0].Quantity = 3
	created.OccurredAt = timestamppb.New(at.Add(time.Hour))
	created.Producer = "orders"

	rep := replaydiff.Compare(records(t, a[:1], 0, 0), records(t, []*eventsv1.Envelope{created}, 0, 0), replaydiff.Options{})
	if len(rep.Orders) != 1 || len(rep.Orders[0].Changed) != 1 {
		t.Fatalf("report:\n%s", rep)
	}
	got := map[string]replaydiff.FieldDiff{}
	for _, f := range rep.Orders[0].Changed[0].Fields {
		got[f.Path] = f
	}
	expect := map[string][2]string{
		"occurred_at":                     {`"2026-11-30T12:00:00Z"`, `"2026-11-30T13:00:00Z"`},
		"producer":                        {`"order"`, `"orders"`},
		"order_created.lines[0].quantity": {"1", "3"},
		"order_created.lines[1]":          {replaydiff.Unset, `{"sku":"SKU-2","quantity":2,"unit_price_minor":"100"}`},
	}
	if len(got) != len(expect) {
		t.Fatalf("fields %v, want %v", got, expect)
	}
	for path, wg := range expect {
		if f, ok := got[path]; !ok || f.Want != wg[0] || f.Got != wg[1] {
			t.Fatalf("field %s: %+v, want %q → %q", path, f, wg[0], wg[1])
		}
	}

	rep = replaydiff.Compare(records(t, a[:1], 0, 0), records(t, []*eventsv1.Envelope{created}, 0, 0),
		replaydiff.Options{Ignore: []string{"occurred_at", "producer", "*.lines"}})
	mustEmpty(t, rep)

	// A different payload case under the same id is named as such.
	swapped := proto.Clone(a[4]).(*eventsv1.Envelope)
	swapped.Payload = &eventsv1.Envelope_OrderCancelled{OrderCancelled: &eventsv1.OrderCancelled{Reason: eventsv1.CancelReason(1)}}
	// The recorder keeps such an envelope as one (it is valid JSON); the comparison
	// must still name the case change.
	gotRec := records(t, a[4:], 0, 0)
	var err error
	if gotRec[0].Envelope, err = capture.MarshalEnvelope(swapped); err != nil {
		t.Fatal(err)
	}
	rep = replaydiff.Compare(records(t, a[4:], 0, 0), gotRec, replaydiff.Options{})
	if !strings.Contains(rep.String(), "    payload: case order_completed → case order_cancelled\n") {
		t.Fatalf("report:\n%s", rep)
	}
}

func TestMissingAndExtraEvents(t *testing.T) {
	a, b := twoSagas(t)
	extra := newEvent(t, orderB, "payment", b[2].GetEventId(), 9, &eventsv1.PaymentRefunded{
		PaymentId: "0194f5c3-0000-7000-8000-0000000000c1", RefundId: "0194f5c3-0000-7000-8000-0000000000c2", Reason: eventsv1.RefundReason(1), Amount: &commonv1.Money{AmountMinor: 1250, Currency: "EUR"}})
	want := append(records(t, a, 0, 0), records(t, b, 0, 5)...)
	gotEnvs := append(append([]*eventsv1.Envelope{}, a[:3]...), a[4]) // a's shipment is missing
	gotEnvs = append(gotEnvs, b...)
	gotEnvs = append(gotEnvs, extra)
	rep := replaydiff.Compare(want, records(t, gotEnvs, 0, 0), replaydiff.Options{})
	if rep.Counts.Missing != 1 || rep.Counts.Extra != 1 || rep.Differences() != 2 || len(rep.Orders) != 2 {
		t.Fatalf("report:\n%s", rep)
	}
	if m := rep.Orders[0].Missing; rep.Orders[0].OrderID != orderA || len(m) != 1 || m[0].ID != a[3].GetEventId() || m[0].Type != "SHIPMENT_CREATED" {
		t.Fatalf("missing: %+v", rep.Orders[0])
	}
	if e := rep.Orders[1].Extra; rep.Orders[1].OrderID != orderB || len(e) != 1 || e[0].ID != extra.GetEventId() {
		t.Fatalf("extra: %+v", rep.Orders[1])
	}
	s := rep.String()
	for _, line := range []string{"  missing SHIPMENT_CREATED " + a[3].GetEventId() + " (shipments.v1)\n",
		"  extra   PAYMENT_REFUNDED " + extra.GetEventId() + " (payments.v1)\n"} {
		if !strings.Contains(s, line) {
			t.Fatalf("report lacks %q:\n%s", line, s)
		}
	}
}

func TestOrderOnlyWithinTopicAndKey(t *testing.T) {
	a, b := twoSagas(t)
	want := append(records(t, a, 0, 0), records(t, b, 0, 5)...)

	// Across topics any interleaving is fine (the design promises none).
	reversed := records(t, []*eventsv1.Envelope{a[4], b[4], b[3], a[3], a[2], b[2], b[1], a[1], a[0], b[0]}, 0, 0)
	// ... but a[4] (ORDER_COMPLETED) before a[0] (ORDER_CREATED) on orders.v1 breaks a's order stream,
	// and b's likewise. Keep each orders.v1 stream in order, shuffle the rest:
	acrossTopics := records(t, []*eventsv1.Envelope{b[3], a[3], a[2], b[2], b[1], a[1], a[0], b[0], a[4], b[4]}, 0, 0)
	mustEmpty(t, replaydiff.Compare(want, acrossTopics, replaydiff.Options{}))

	rep := replaydiff.Compare(want, reversed, replaydiff.Options{})
	if rep.Counts.Order != 2 || rep.Differences() != 2 {
		t.Fatalf("want one order problem per order, got:\n%s", rep)
	}
	line := "  order   orders.v1 key " + orderA + ": want ORDER_CREATED " + a[0].GetEventId()[:8] +
		" before ORDER_COMPLETED " + a[4].GetEventId()[:8] + ", got them the other way round\n"
	if !strings.Contains(rep.String(), line) {
		t.Fatalf("report lacks %q:\n%s", line, rep)
	}
}

func TestCausedEventBeforeItsCause(t *testing.T) {
	a, _ := twoSagas(t)
	// A cancellation caused directly by the creation, on the same stream.
	cancelled := newEvent(t, orderA, "order", a[0].GetEventId(), 5, &eventsv1.OrderCancelled{Reason: eventsv1.CancelReason(1)})
	// Both sides hold the same wrong order, so only the causation rule can see it.
	recs := records(t, []*eventsv1.Envelope{cancelled, a[0]}, 0, 0)
	rep := replaydiff.Compare(recs, recs, replaydiff.Options{})
	line := "  order   orders.v1 key " + orderA + ": ORDER_CANCELLED " + cancelled.GetEventId()[:8] +
		" comes before its cause ORDER_CREATED " + a[0].GetEventId()[:8] + " in got\n"
	if rep.Counts.Order != 1 || !strings.Contains(rep.String(), line) {
		t.Fatalf("report lacks %q:\n%s", line, rep)
	}
	// In the right order on one side and the wrong one on the other: one line, not two.
	rep = replaydiff.Compare(records(t, []*eventsv1.Envelope{a[0], cancelled}, 0, 0), recs, replaydiff.Options{})
	if rep.Counts.Order != 1 || !strings.Contains(rep.String(), line) {
		t.Fatalf("report:\n%s", rep)
	}
}

func TestRecordsThatAreNotEnvelopes(t *testing.T) {
	a, _ := twoSagas(t)
	raw := func(value string) capture.Record {
		return capture.FromMessage(bus.Message{Topic: events.TopicOrders, Key: orderA, Value: []byte(value)}, 0, 9, at, "")
	}
	if r := raw("\xff\x01"); r.Error == "" {
		t.Fatalf("test record decoded as an envelope: %+v", r)
	}
	want := append(records(t, a[:1], 0, 0), raw("\xff\x01"), raw("garbage"))
	got := append(records(t, a[:1], 0, 0), raw("garbage"), raw("\xff\x02"))
	rep := replaydiff.Compare(want, got, replaydiff.Options{})
	if rep.Counts.Missing != 1 || rep.Counts.Extra != 1 || rep.Counts.Matched != 2 {
		t.Fatalf("report:\n%s", rep)
	}
	// An envelope line that does not decode is compared by its JSON, not lost.
	broken := capture.Record{Topic: events.TopicOrders, Key: orderA, Envelope: []byte(`{"event_id":7}`)}
	brokenToo := capture.Record{Topic: events.TopicOrders, Key: orderA, Envelope: []byte(`{"event_id":8}`)}
	if r := replaydiff.Compare([]capture.Record{broken}, []capture.Record{broken}, replaydiff.Options{}); !r.Empty() || r.Counts.Matched != 1 {
		t.Fatalf("same broken envelope:\n%s", r)
	}
	if r := replaydiff.Compare([]capture.Record{broken}, []capture.Record{brokenToo}, replaydiff.Options{}); r.Counts.Missing != 1 || r.Counts.Extra != 1 ||
		!strings.Contains(r.String(), `{\"event_id\":8}`) {
		t.Fatalf("different broken envelopes:\n%s", r)
	}
	s := rep.String()
	for _, part := range []string{"  missing record on orders.v1 key \"" + orderA + "\": value 2 bytes ff01, not an envelope",
		"  extra   record on orders.v1 key \"" + orderA + "\": value 2 bytes ff02, not an envelope"} {
		if !strings.Contains(s, part) {
			t.Fatalf("report lacks %q:\n%s", part, s)
		}
	}
}

func TestHeadersMustAgreeWithTheEnvelope(t *testing.T) {
	a, _ := twoSagas(t)
	want := records(t, a[:1], 0, 0)
	got := records(t, a[:1], 0, 0)
	got[0].Headers = append([]capture.KafkaHeader(nil), got[0].Headers...)
	for i := range got[0].Headers {
		if got[0].Headers[i].Key == bus.HeaderType {
			got[0].Headers[i].Value = "ORDER_COMPLETED"
		}
	}
	rep := replaydiff.Compare(want, got, replaydiff.Options{})
	if rep.Counts.Problems != 1 || !strings.Contains(rep.String(), `header type="ORDER_COMPLETED" but the envelope says "ORDER_CREATED"`) {
		t.Fatalf("report:\n%s", rep)
	}
}

func TestDuplicatesAreToleratedUnlessTheyDisagree(t *testing.T) {
	a, _ := twoSagas(t)
	want := records(t, a, 0, 0)
	mustEmpty(t, replaydiff.Compare(want, append(records(t, a, 0, 0), record(t, a[1], 0, 9)), replaydiff.Options{}))

	other := proto.Clone(a[1]).(*eventsv1.Envelope)
	other.Producer = "someone-else"
	rep := replaydiff.Compare(want, append(records(t, a, 0, 0), record(t, other, 0, 9)), replaydiff.Options{})
	if rep.Counts.Problems != 1 || !strings.Contains(rep.String(), "recorded twice with different content") {
		t.Fatalf("report:\n%s", rep)
	}
}

func TestCompareState(t *testing.T) {
	want := []byte(`{"orders":[{"id":"a","status":"COMPLETED","total":1250,"steps":["created","paid"]}],"stock":{"SKU-1":9,"SKU-2":3}}`)
	same := []byte(`{"stock":{"SKU-2":3,"SKU-1":9.0},"orders":[{"steps":["created","paid"],"total":1250,"status":"COMPLETED","id":"a"}]}`)
	got := []byte(`{"orders":[{"id":"a","status":"CANCELLED","total":1250,"steps":["created"]}],"stock":{"SKU-1":10,"SKU-2":3,"SKU-3":1}}`)

	d, err := replaydiff.CompareState(want, same)
	if err != nil || !d.Empty() {
		t.Fatalf("equal documents: %v %v", d, err)
	}
	d, err = replaydiff.CompareState(want, got)
	if err != nil {
		t.Fatal(err)
	}
	expect := replaydiff.StateDiff{
		{Path: "orders[0].status", Want: `"COMPLETED"`, Got: `"CANCELLED"`},
		{Path: "orders[0].steps[1]", Want: `"paid"`, Got: replaydiff.Unset},
		{Path: "stock.SKU-1", Want: "9", Got: "10"},
		{Path: "stock.SKU-3", Want: replaydiff.Unset, Got: "1"},
	}
	if len(d) != len(expect) {
		t.Fatalf("diff:\n%s", d)
	}
	for i := range expect {
		if d[i] != expect[i] {
			t.Fatalf("diff[%d] = %+v, want %+v\n%s", i, d[i], expect[i], d)
		}
	}
	if !strings.Contains(d.String(), "  orders[0].status: \"COMPLETED\" → \"CANCELLED\"\n") {
		t.Fatalf("text:\n%s", d)
	}
	d, err = replaydiff.CompareState(want, got, replaydiff.Options{Ignore: []string{"stock", "orders.steps"}})
	if err != nil || len(d) != 1 || d[0].Path != "orders[0].status" {
		t.Fatalf("with ignore: %v %v", d, err)
	}
	if _, err := replaydiff.CompareState(want, []byte(`{"orders":`)); err == nil || !strings.Contains(err.Error(), "got state") {
		t.Fatalf("invalid JSON must be an error naming its side, got %v", err)
	}
}
