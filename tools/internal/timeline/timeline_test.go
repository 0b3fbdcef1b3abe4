package timeline

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

const (
	orderID    = "0190f0a0-0000-7000-8000-000000000001"
	customerID = "0190f0a0-0000-7000-8000-0000000000c1"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// ev is one saga-log event at t0+at; its id is derived from its type.
type ev struct {
	typ      eventsv1.EventType
	producer string
	at       time.Duration
}

func id(typ eventsv1.EventType) string { return "id-" + eventName(typ) }

func envelopes(evs ...ev) []*eventsv1.Envelope {
	var out []*eventsv1.Envelope
	for _, e := range evs {
		out = append(out, &eventsv1.Envelope{EventId: id(e.typ), Type: e.typ, OrderId: orderID, CustomerId: customerID,
			OccurredAt: timestamppb.New(t0.Add(e.at)), Producer: e.producer})
	}
	return out
}

func order(status orderv1.OrderStatus, steps ...*orderv1.Step) *orderv1.Order {
	return &orderv1.Order{OrderId: orderID, CustomerId: customerID, Status: status, CreateTime: timestamppb.New(t0), Steps: steps}
}

func step(typ eventsv1.EventType, at time.Duration, detail string) *orderv1.Step {
	return &orderv1.Step{EventType: typ, EventId: id(typ), OccurredAt: timestamppb.New(t0.Add(at)), Detail: detail}
}

func note(typ eventsv1.EventType, template string, at time.Duration) *notificationv1.Notification {
	return &notificationv1.Notification{OrderId: orderID, CustomerId: customerID, Template: template, EventType: typ,
		EventId: id(typ), SendTime: timestamppb.New(t0.Add(at))}
}

const (
	created    = eventsv1.EventType_EVENT_TYPE_ORDER_CREATED
	reserved   = eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED
	paid       = eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED
	deducted   = eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED
	shipped    = eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED
	completed  = eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED
	shipFailed = eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED
	refunded   = eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED
	restored   = eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED
	cancelled  = eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED
	shipCancel = eventsv1.EventType_EVENT_TYPE_SHIPMENT_CANCELLED
)

// row is what a test expects of one entry.
type row struct {
	service, event string
	kind           Kind
	sinceStart     time.Duration
	gap            time.Duration
	hasGap         bool
}

func TestBuild(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name     string
		order    *orderv1.Order
		log      []*eventsv1.Envelope
		notes    []*notificationv1.Notification
		want     []row
		services []string
		took     time.Duration
		notInLog int
	}{
		{
			name: "happy path, log out of time order, with a notification and another order's notification",
			order: order(orderv1.OrderStatus_ORDER_STATUS_COMPLETED, step(created, 0, ""), step(reserved, 10*ms, ""),
				step(paid, 30*ms, "charged"), step(deducted, 35*ms, ""), step(shipped, 50*ms, ""), step(completed, 60*ms, "")),
			// Cross-topic: the log may hold them in arrival order.
			log: envelopes(ev{created, "order", 0}, ev{paid, "payment", 30 * ms}, ev{reserved, "inventory", 10 * ms},
				ev{deducted, "inventory", 35 * ms}, ev{shipped, "shipping", 50 * ms}, ev{completed, "order", 60 * ms}),
			notes: []*notificationv1.Notification{note(completed, "order_completed", 64*ms),
				{OrderId: "another", Template: "order_created", SendTime: timestamppb.New(t0.Add(ms))}},
			want: []row{
				{"order", "ORDER_CREATED", KindStep, 0, 0, false},
				{"inventory", "STOCK_RESERVED", KindStep, 10 * ms, 10 * ms, true},
				{"payment", "PAYMENT_PROCESSED", KindStep, 30 * ms, 20 * ms, true},
				{"inventory", "INVENTORY_UPDATED", KindStep, 35 * ms, 5 * ms, true},
				{"shipping", "SHIPMENT_CREATED", KindStep, 50 * ms, 15 * ms, true},
				{"order", "ORDER_COMPLETED", KindOutcome, 60 * ms, 10 * ms, true},
				{"notification", "NOTIFIED order_completed", KindNotification, 64 * ms, 4 * ms, true},
			},
			services: []string{"order", "inventory", "payment", "shipping", "notification"},
			took:     60 * ms,
		},
		{
			name: "shipment failed: compensations marked, gaps skip notifications",
			order: order(orderv1.OrderStatus_ORDER_STATUS_CANCELLED, step(created, 0, ""), step(reserved, 10*ms, ""),
				step(paid, 20*ms, ""), step(deducted, 25*ms, ""), step(shipFailed, 40*ms, "no carrier"), step(cancelled, 45*ms, "")),
			log: envelopes(ev{created, "order", 0}, ev{reserved, "inventory", 10 * ms}, ev{paid, "payment", 20 * ms},
				ev{deducted, "inventory", 25 * ms}, ev{shipFailed, "shipping", 40 * ms}, ev{refunded, "payment", 44 * ms},
				ev{cancelled, "order", 45 * ms}, ev{restored, "inventory", 47 * ms}, ev{shipCancel, "shipping", 49 * ms}),
			notes: []*notificationv1.Notification{note(shipFailed, "shipment_failed", 42*ms)},
			want: []row{
				{"order", "ORDER_CREATED", KindStep, 0, 0, false},
				{"inventory", "STOCK_RESERVED", KindStep, 10 * ms, 10 * ms, true},
				{"payment", "PAYMENT_PROCESSED", KindStep, 20 * ms, 10 * ms, true},
				{"inventory", "INVENTORY_UPDATED", KindStep, 25 * ms, 5 * ms, true},
				{"shipping", "SHIPMENT_FAILED", KindFailure, 40 * ms, 15 * ms, true},
				{"notification", "NOTIFIED shipment_failed", KindNotification, 42 * ms, 2 * ms, true},
				{"payment", "PAYMENT_REFUNDED", KindCompensation, 44 * ms, 4 * ms, true}, // from SHIPMENT_FAILED, not the notification
				{"order", "ORDER_CANCELLED", KindCompensation, 45 * ms, 1 * ms, true},
				{"inventory", "STOCK_RESTORED", KindCompensation, 47 * ms, 2 * ms, true},
				{"shipping", "SHIPMENT_CANCELLED", KindCompensation, 49 * ms, 2 * ms, true},
			},
			services: []string{"order", "inventory", "payment", "shipping", "notification"},
			took:     45 * ms,
		},
		{
			name: "pending, log behind the order: order-only steps kept, producer from the type, no took",
			order: order(orderv1.OrderStatus_ORDER_STATUS_PENDING, step(created, 0, ""), step(reserved, 10*ms, ""),
				step(paid, 30*ms, "")),
			log: envelopes(ev{created, "", 0}), // no producer recorded: taken from the type
			want: []row{
				{"order", "ORDER_CREATED", KindStep, 0, 0, false},
				{"inventory", "STOCK_RESERVED", KindStep, 10 * ms, 10 * ms, true},
				{"payment", "PAYMENT_PROCESSED", KindStep, 30 * ms, 20 * ms, true},
			},
			services: []string{"order", "inventory", "payment"},
			notInLog: 2,
		},
		{
			name:  "notification of an event nobody recorded: no gap",
			order: order(orderv1.OrderStatus_ORDER_STATUS_PENDING, step(created, 0, "")),
			notes: []*notificationv1.Notification{note(reserved, "stock_reserved", 5*ms)},
			want: []row{
				{"order", "ORDER_CREATED", KindStep, 0, 0, false},
				{"notification", "NOTIFIED stock_reserved", KindNotification, 5 * ms, 0, false},
			},
			services: []string{"order", "notification"},
			notInLog: 1,
		},
		{
			name:  "services listed in the suite's order, not by first appearance",
			order: order(orderv1.OrderStatus_ORDER_STATUS_PENDING),
			log:   envelopes(ev{shipped, "shipping", 0}, ev{created, "order", ms}, ev{reserved, "inventory", 2 * ms}),
			notes: []*notificationv1.Notification{note(paid, "payment_processed", -ms)},
			want: []row{
				{"notification", "NOTIFIED payment_processed", KindNotification, -ms, 0, false},
				{"shipping", "SHIPMENT_CREATED", KindStep, 0, 0, false},
				{"order", "ORDER_CREATED", KindStep, ms, ms, true},
				{"inventory", "STOCK_RESERVED", KindStep, 2 * ms, ms, true},
			},
			services: []string{"order", "inventory", "shipping", "notification"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tl, err := Build(tc.order, tc.log, tc.notes)
			if err != nil {
				t.Fatal(err)
			}
			if len(tl.Entries) != len(tc.want) {
				t.Fatalf("%d entries, want %d: %+v", len(tl.Entries), len(tc.want), tl.Entries)
			}
			for i, w := range tc.want {
				e := tl.Entries[i]
				got := row{e.Service, e.Event, e.Kind, e.SinceStart, e.Gap, e.HasGap}
				if got != w || e.Seq != i+1 {
					t.Errorf("entry %d = %+v (seq %d), want %+v", i+1, got, e.Seq, w)
				}
			}
			if strings.Join(tl.Services, ",") != strings.Join(tc.services, ",") {
				t.Errorf("services %v, want %v", tl.Services, tc.services)
			}
			if tl.Took != tc.took || tl.NotInSagaLog != tc.notInLog {
				t.Errorf("took %s, not in log %d; want %s, %d", tl.Took, tl.NotInSagaLog, tc.took, tc.notInLog)
			}
		})
	}
}

func TestBuildMergesOrderDetailsAndSources(t *testing.T) {
	o := order(orderv1.OrderStatus_ORDER_STATUS_CANCELLED, step(created, 0, ""), step(shipFailed, 5*time.Millisecond, "no carrier for XX"))
	o.CancelReason = eventsv1.CancelReason_CANCEL_REASON_SHIPMENT_FAILED
	o.CancelDetail = "no carrier for XX"
	tl, err := Build(o, envelopes(ev{created, "order", 0}, ev{shipFailed, "shipping", 5 * time.Millisecond}), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := tl.Entries[1]
	if e.Detail != "no carrier for XX" || strings.Join(e.Sources, ",") != SourceSagaLog+","+SourceOrderHistory || e.EventID != id(shipFailed) {
		t.Fatalf("entry %+v", e)
	}
	if tl.Status != "CANCELLED" || tl.CancelReason != "SHIPMENT_FAILED" {
		t.Fatalf("status %q reason %q", tl.Status, tl.CancelReason)
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	if _, err := Build(nil, nil, nil); err == nil {
		t.Error("nil order: no error")
	}
	if _, err := Build(order(orderv1.OrderStatus_ORDER_STATUS_PENDING), nil, nil); err == nil || !strings.Contains(err.Error(), "no recorded event") {
		t.Errorf("no events: %v", err)
	}
	foreign := envelopes(ev{created, "order", 0})
	foreign[0].OrderId = "someone-else"
	if _, err := Build(order(orderv1.OrderStatus_ORDER_STATUS_PENDING), foreign, nil); err == nil || !strings.Contains(err.Error(), "someone-else") {
		t.Errorf("foreign event: %v", err)
	}
}

func TestWriteTable(t *testing.T) {
	ms := time.Millisecond
	o := order(orderv1.OrderStatus_ORDER_STATUS_CANCELLED, step(created, 0, ""), step(shipFailed, 40*ms, "no carrier"))
	o.CancelReason = eventsv1.CancelReason_CANCEL_REASON_SHIPMENT_FAILED
	tl, err := Build(o, envelopes(ev{created, "order", 0}, ev{shipFailed, "shipping", 40 * ms},
		ev{refunded, "payment", 44 * ms}, ev{cancelled, "order", 1500 * ms}), []*notificationv1.Notification{note(shipFailed, "shipment_failed", 42*ms)})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tl.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	if !strings.Contains(buf.String(), "status CANCELLED (SHIPMENT_FAILED)") || !strings.Contains(buf.String(), "ended after 1.5s") {
		t.Errorf("header:\n%s", buf.String())
	}
	var header int
	for i, l := range lines {
		if strings.HasPrefix(l, "#") {
			header = i
		}
	}
	if got := strings.Fields(lines[header]); strings.Join(got, " ") != "# SINCE START GAP SERVICE EVENT MARK EVENT ID DETAIL" {
		t.Fatalf("columns %q", got)
	}
	want := [][]string{
		{"1", "+0s", "-", "order", "ORDER_CREATED", id(created)},
		{"2", "+40ms", "+40ms", "shipping", "SHIPMENT_FAILED", "FAILED", id(shipFailed), "no", "carrier"},
		{"3", "+42ms", "+2ms", "notification", "NOTIFIED", "shipment_failed", "re", id(shipFailed)},
		{"4", "+44ms", "+4ms", "payment", "PAYMENT_REFUNDED", "COMPENSATION", id(refunded)},
		{"5", "+1.5s", "+1.456s", "order", "ORDER_CANCELLED", "COMPENSATION", id(cancelled)},
	}
	for i, w := range want {
		if got := strings.Fields(lines[header+1+i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("row %d = %q, want %q", i+1, got, w)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	ms := time.Millisecond
	tl, err := Build(order(orderv1.OrderStatus_ORDER_STATUS_COMPLETED), envelopes(ev{created, "order", 0},
		ev{completed, "order", 2500 * time.Microsecond}), []*notificationv1.Notification{note(reserved, "x", 3*ms)})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tl.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got struct {
		OrderID  string   `json:"order_id"`
		Status   string   `json:"status"`
		TookMS   float64  `json:"took_ms"`
		Services []string `json:"services"`
		Entries  []struct {
			Seq          int      `json:"seq"`
			Service      string   `json:"service"`
			Event        string   `json:"event"`
			Kind         string   `json:"kind"`
			SinceStartMS float64  `json:"since_start_ms"`
			GapMS        *float64 `json:"gap_ms"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if got.OrderID != orderID || got.Status != "COMPLETED" || got.TookMS != 2.5 || len(got.Entries) != 3 {
		t.Fatalf("%+v", got)
	}
	e := got.Entries
	if e[0].GapMS != nil || e[1].GapMS == nil || *e[1].GapMS != 2.5 || e[1].Kind != "outcome" || e[1].SinceStartMS != 2.5 ||
		e[2].GapMS != nil || e[2].Kind != "notification" {
		t.Fatalf("entries %+v\n%s", e, buf.String())
	}
}

// A notification whose send time reads before the event it reports (another
// clock, recorded before the event's commit time) still follows that event;
// its gap shows the real, negative, difference.
func TestNotificationNeverPrecedesItsEvent(t *testing.T) {
	ms := time.Millisecond
	tl, err := Build(order(orderv1.OrderStatus_ORDER_STATUS_COMPLETED), envelopes(ev{created, "order", 0}, ev{completed, "order", 10 * ms}),
		[]*notificationv1.Notification{note(created, "order_received", -ms), note(completed, "order_completed", 9*ms)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range tl.Entries {
		got = append(got, e.Event)
	}
	if strings.Join(got, ",") != "ORDER_CREATED,NOTIFIED order_received,ORDER_COMPLETED,NOTIFIED order_completed" {
		t.Fatalf("order %v", got)
	}
	if e := tl.Entries[1]; e.Gap != -ms || !e.HasGap || e.SinceStart != -ms {
		t.Fatalf("notification entry %+v", e)
	}
	if strings.Join(tl.Services, ",") != "order,notification" {
		t.Fatalf("services %v", tl.Services)
	}
}
