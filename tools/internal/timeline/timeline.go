// Package timeline builds the timeline of one saga from what the services'
// APIs answer: the notification service's saga log (every event, with its
// producer), the order's own step history (status and step details) and the
// notifications sent about the order. It only arranges and prints; fetching
// is the caller's (sagactl saga).
//
// The timeline has no trace id: the W3C traceparent travels only as a Kafka
// header, and neither the envelope nor any API answer carries it.
package timeline

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

// Kind classifies an entry so compensations and failures stand out.
type Kind string

// The kinds of entries.
const (
	KindStep         Kind = "step"         // a forward step of the saga
	KindFailure      Kind = "failure"      // a step that could not be done; compensations follow
	KindCompensation Kind = "compensation" // undoes earlier work (or cancels the saga)
	KindOutcome      Kind = "outcome"      // the saga ended well
	KindNotification Kind = "notification" // the customer was told about an event
)

// Where an entry was seen.
const (
	SourceSagaLog       = "saga-log"      // notification GetSagaLog
	SourceOrderHistory  = "order-history" // order GetOrder steps
	SourceNotifications = "notifications" // notification ListNotifications
)

// Entry is one row of the timeline.
type Entry struct {
	Seq     int    `json:"seq"`
	Service string `json:"service"`
	// Event is the event type without its EVENT_TYPE_ prefix, or for a
	// notification "NOTIFIED <template>".
	Event   string `json:"event"`
	Kind    Kind   `json:"kind"`
	EventID string `json:"event_id,omitempty"`
	// CausedBy is, for a notification, the event it reports.
	CausedBy string    `json:"caused_by,omitempty"`
	At       time.Time `json:"at"`
	// SinceStart is At minus the saga's start.
	SinceStart time.Duration `json:"-"`
	// Gap is, for a saga event, the time since the previous saga event; for
	// a notification, the time since the event it reports (0 when unknown).
	Gap     time.Duration `json:"-"`
	HasGap  bool          `json:"-"` // false for the first event and a notification of an unknown event
	Detail  string        `json:"detail,omitempty"`
	Sources []string      `json:"sources"`
}

// MarshalJSON writes the durations as milliseconds, which any reader parses.
func (e Entry) MarshalJSON() ([]byte, error) {
	type plain Entry
	var gapMS *float64
	if e.HasGap {
		g := ms(e.Gap)
		gapMS = &g
	}
	return json.Marshal(struct {
		plain
		SinceStartMS float64  `json:"since_start_ms"`
		GapMS        *float64 `json:"gap_ms"` // null when there is nothing to measure from
	}{plain(e), ms(e.SinceStart), gapMS})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Timeline is one saga from its start to now.
type Timeline struct {
	OrderID      string    `json:"order_id"`
	CustomerID   string    `json:"customer_id"`
	Status       string    `json:"status"`
	CancelReason string    `json:"cancel_reason,omitempty"`
	CancelDetail string    `json:"cancel_detail,omitempty"`
	Started      time.Time `json:"started"`
	// Took is the saga's start to its terminal event; 0 while it is pending.
	Took time.Duration `json:"-"`
	// Services lists the services seen: order, inventory, payment, shipping,
	// notification (those present), then any other producer.
	Services []string `json:"services"`
	Entries  []Entry  `json:"entries"`
	// NotInSagaLog counts order steps the saga log does not hold (yet):
	// the notification service consumes the events on its own.
	NotInSagaLog int `json:"not_in_saga_log"`
}

// MarshalJSON writes Took as milliseconds.
func (t Timeline) MarshalJSON() ([]byte, error) {
	type plain Timeline
	return json.Marshal(struct {
		plain
		TookMS float64 `json:"took_ms"`
	}{plain(t), ms(t.Took)})
}

// producers says which service emits each event type (the envelope's
// producer field says it too; this fills in steps seen only in the order's
// history).
var producers = map[eventsv1.EventType]string{
	eventsv1.EventType_EVENT_TYPE_ORDER_CREATED:      "order",
	eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED:    "order",
	eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED:    "order",
	eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED:     "inventory",
	eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK:       "inventory",
	eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED:  "inventory",
	eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED:     "inventory",
	eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED:  "payment",
	eventsv1.EventType_EVENT_TYPE_PAYMENT_FAILED:     "payment",
	eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED:   "payment",
	eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED:   "shipping",
	eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED:    "shipping",
	eventsv1.EventType_EVENT_TYPE_SHIPMENT_CANCELLED: "shipping",
	eventsv1.EventType_EVENT_TYPE_NOTIFICATION_SENT:  "notification",
}

var serviceOrder = []string{"order", "inventory", "payment", "shipping", "notification"}

func serviceRank(name string) int {
	if i := slices.Index(serviceOrder, name); i >= 0 {
		return i
	}
	return len(serviceOrder)
}

// KindOf classifies an event type.
func KindOf(t eventsv1.EventType) Kind {
	switch t {
	case eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED, eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED,
		eventsv1.EventType_EVENT_TYPE_SHIPMENT_CANCELLED, eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED:
		return KindCompensation
	case eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK, eventsv1.EventType_EVENT_TYPE_PAYMENT_FAILED,
		eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED:
		return KindFailure
	case eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED:
		return KindOutcome
	}
	return KindStep
}

func eventName(t eventsv1.EventType) string { return strings.TrimPrefix(t.String(), "EVENT_TYPE_") }

// Build arranges one saga: every saga-log event, the order's steps the log
// lacks, and the notifications about this order (others are ignored), in
// time order. order must be non-nil; log and notes may be empty.
func Build(order *orderv1.Order, log []*eventsv1.Envelope, notes []*notificationv1.Notification) (*Timeline, error) {
	if order == nil {
		return nil, fmt.Errorf("timeline: no order")
	}
	t := &Timeline{
		OrderID:    order.GetOrderId(),
		CustomerID: order.GetCustomerId(),
		Status:     strings.TrimPrefix(order.GetStatus().String(), "ORDER_STATUS_"),
	}
	if order.GetStatus() == orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.CancelReason = strings.TrimPrefix(order.GetCancelReason().String(), "CANCEL_REASON_")
		t.CancelDetail = order.GetCancelDetail()
	}

	var entries []*Entry
	byEventID := map[string]*Entry{}
	for _, env := range log {
		if env.GetOrderId() != t.OrderID {
			return nil, fmt.Errorf("timeline: saga log of %s holds event %s of order %s", t.OrderID, env.GetEventId(), env.GetOrderId())
		}
		if byEventID[env.GetEventId()] != nil {
			continue // the log dedupes; a repeat would only double a row
		}
		producer := env.GetProducer()
		if producer == "" {
			producer = producers[env.GetType()]
		}
		e := &Entry{Service: producer, Event: eventName(env.GetType()), Kind: KindOf(env.GetType()), EventID: env.GetEventId(),
			At: env.GetOccurredAt().AsTime(), Sources: []string{SourceSagaLog}}
		entries = append(entries, e)
		byEventID[e.EventID] = e
	}
	for _, st := range order.GetSteps() {
		if e := byEventID[st.GetEventId()]; e != nil {
			e.Detail = st.GetDetail()
			e.Sources = append(e.Sources, SourceOrderHistory)
			continue
		}
		t.NotInSagaLog++
		e := &Entry{Service: producers[st.GetEventType()], Event: eventName(st.GetEventType()), Kind: KindOf(st.GetEventType()),
			EventID: st.GetEventId(), At: st.GetOccurredAt().AsTime(), Detail: st.GetDetail(), Sources: []string{SourceOrderHistory}}
		entries = append(entries, e)
		if e.EventID != "" {
			byEventID[e.EventID] = e
		}
	}
	sagaEvents := len(entries)
	for _, n := range notes {
		if n.GetOrderId() != t.OrderID {
			continue
		}
		entries = append(entries, &Entry{Service: "notification", Event: "NOTIFIED " + n.GetTemplate(), Kind: KindNotification,
			CausedBy: n.GetEventId(), At: n.GetSendTime().AsTime(), Sources: []string{SourceNotifications}})
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("timeline: order %s has no recorded event", t.OrderID)
	}

	// The saga starts when the order is created; without that, at its first event.
	t.Started = order.GetCreateTime().AsTime()
	if order.GetCreateTime() == nil {
		t.Started = entries[0].At
		for _, e := range entries[:sagaEvents] {
			if e.At.Before(t.Started) {
				t.Started = e.At
			}
		}
	}
	// Time order; ties keep saga events before notifications and the log's
	// order. A notification sorts no earlier than the event it reports: its
	// send time comes from another clock and step than the event's
	// occurred_at, and may read a little earlier.
	sortAt := func(e *Entry) time.Time {
		if cause := byEventID[e.CausedBy]; e.Kind == KindNotification && cause != nil && cause.At.After(e.At) {
			return cause.At
		}
		return e.At
	}
	slices.SortStableFunc(entries, func(a, b *Entry) int { return sortAt(a).Compare(sortAt(b)) })

	var prev *Entry
	seen := map[string]bool{}
	for i, e := range entries {
		e.Seq = i + 1
		e.SinceStart = e.At.Sub(t.Started)
		if e.Kind == KindNotification {
			if cause := byEventID[e.CausedBy]; cause != nil {
				e.Gap, e.HasGap = e.At.Sub(cause.At), true
			}
		} else {
			if prev != nil {
				e.Gap, e.HasGap = e.At.Sub(prev.At), true
			}
			prev = e
			if t.Status != "PENDING" && (e.Event == "ORDER_COMPLETED" || e.Event == "ORDER_CANCELLED") {
				t.Took = e.SinceStart
			}
		}
		if e.Service != "" && !seen[e.Service] {
			seen[e.Service] = true
			t.Services = append(t.Services, e.Service)
		}
		t.Entries = append(t.Entries, *e)
	}
	// The suite's usual order, whatever came first; unknown names last.
	slices.SortStableFunc(t.Services, func(a, b string) int { return serviceRank(a) - serviceRank(b) })
	return t, nil
}

// WriteJSON writes the timeline as one indented JSON document.
func (t *Timeline) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

// WriteTable writes a header (order, status, how long it took, services)
// and one row per entry: sequence, time since start, gap, service, event,
// mark, event id, detail.
func (t *Timeline) WriteTable(w io.Writer) error {
	status := t.Status
	if t.CancelReason != "" {
		status += " (" + t.CancelReason
		if t.CancelDetail != "" {
			status += ": " + t.CancelDetail
		}
		status += ")"
	}
	fmt.Fprintf(w, "order %s  customer %s\nstatus %s\n", t.OrderID, t.CustomerID, status)
	fmt.Fprintf(w, "started %s", t.Started.UTC().Format(time.RFC3339Nano))
	if t.Took > 0 {
		fmt.Fprintf(w, ", ended after %s", round(t.Took))
	}
	fmt.Fprintf(w, "\nservices %s\n\n", strings.Join(t.Services, ", "))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSINCE START\tGAP\tSERVICE\tEVENT\tMARK\tEVENT ID\tDETAIL")
	for _, e := range t.Entries {
		gap := "-"
		if e.HasGap {
			gap = signed(e.Gap)
		}
		id := e.EventID
		if e.Kind == KindNotification {
			id = "re " + e.CausedBy
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, signed(e.SinceStart), gap, e.Service, e.Event, mark(e.Kind), id, e.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if t.NotInSagaLog > 0 {
		fmt.Fprintf(w, "\n%d step(s) of the order's history are not in the saga log yet (notification consumes on its own).\n", t.NotInSagaLog)
	}
	_, err := fmt.Fprintln(w, "\nGAP: since the previous saga event; for a notification, since the event it reports.")
	return err
}

func mark(k Kind) string {
	switch k {
	case KindCompensation:
		return "COMPENSATION"
	case KindFailure:
		return "FAILED"
	case KindOutcome:
		return "DONE"
	}
	return ""
}

// signed writes d with its sign: +12ms, or -1ms when clocks disagree.
func signed(d time.Duration) string {
	if d < 0 {
		return "-" + round(-d)
	}
	return "+" + round(d)
}

// round keeps durations readable (ms, or µs below a millisecond).
func round(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
