package wholesuite_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/tools/internal/audit"
	"github.com/sagasuite/sagasuite/tools/internal/bench"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/replay/wholesuite"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

const free = "127.0.0.1:0"

var catalog = []devstack.Product{
	{SKU: "RPL-MUG", Name: "Replay mug", Price: 1250, Stock: 20},
	{SKU: "RPL-TEE", Name: "Replay tee", Price: 1999, Stock: 10},
}

// A recording of five sagas (success, payment declined, shipment failed,
// customer cancel, deadline) made on a dev stack replays into a fresh
// suite: every
// recorded event comes again with its id and an equal payload (occurred_at
// aside for events the services emit on their own, see the package
// comment), nothing extra is emitted, and two replays write byte-identical
// files.
func TestReplayReproducesARecording(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	logs := &syncBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	}()

	header, recs, recordedIn := record(ctx, t, logs)
	t.Logf("recorded %d records of 5 orders in %s (first CreateOrder to a clean audit)", len(recs), recordedIn.Round(time.Millisecond))

	progress := &syncBuffer{}
	first, err := wholesuite.Replay(ctx, wholesuite.Options{Header: header, Records: recs, LogOutput: logs, Progress: progress})
	if err != nil {
		t.Fatalf("Replay: %v\nits progress:\n%s", err, progress.String())
	}
	t.Logf("replay 1 progress:\n%s", progress.String())
	// The cancel landed before inventory saw the order; the replay must
	// find that in the recording and hold inventory the same way.
	if strings.Count(progress.String(), "holding inventory until the cancel is in") != 2 {
		t.Errorf("the replay did not hold inventory for the customer cancel:\n%s", progress.String())
	}
	t.Logf("replay 1: %s wall with the suite's start and the scan, %s replaying the sagas; the recording spans %s (first to last event); %d records",
		first.Took.Round(time.Millisecond), first.SagasTook.Round(time.Millisecond), first.RecordedSpan.Round(time.Millisecond), len(first.Records))
	diffs, err := differences(recs, first.Records)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Error(d)
	}
	// The comparison can fail: a changed payload field, a changed root
	// timestamp and a missing event are each reported.
	for name, changed := range map[string][]capture.Record{
		"tracking number": tamper(t, recs, eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED, func(e *eventsv1.Envelope) {
			e.GetShipmentCreated().TrackingNumber += "X"
		}),
		"root occurred_at": tamper(t, recs, eventsv1.EventType_EVENT_TYPE_ORDER_CREATED, func(e *eventsv1.Envelope) {
			e.OccurredAt.Nanos += 1000
		}),
		"event id": tamper(t, recs, eventsv1.EventType_EVENT_TYPE_PAYMENT_FAILED, func(e *eventsv1.Envelope) {
			e.EventId = uuid.NewString()
		}),
	} {
		if d, err := differences(changed, first.Records); err != nil || len(d) == 0 {
			t.Errorf("a recording with a changed %s compares equal to the replay (%v)", name, err)
		}
	}

	second, err := wholesuite.Replay(ctx, wholesuite.Options{Header: header, Records: recs, LogOutput: logs})
	if err != nil {
		t.Fatalf("second Replay: %v", err)
	}
	t.Logf("replay 2: %s wall, %s replaying the sagas", second.Took.Round(time.Millisecond), second.SagasTook.Round(time.Millisecond))
	dir1, dir2 := filepath.Join(t.TempDir(), "1"), filepath.Join(t.TempDir(), "2")
	if err := wholesuite.WriteResult(dir1, header, first); err != nil {
		t.Fatal(err)
	}
	if err := wholesuite.WriteResult(dir2, header, second); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"events.jsonl", "state.json"} {
		a, _ := os.ReadFile(filepath.Join(dir1, name))
		b, _ := os.ReadFile(filepath.Join(dir2, name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("two replays wrote different %s (%d and %d bytes), first differing lines:\n%s", name, len(a), len(b), lineDiff(string(a), string(b)))
		}
	}
	if !strings.Contains(string(first.State), `"CANCEL_REASON_CUSTOMER_REQUESTED"`) || !strings.Contains(string(first.State), `"RPL-MUG"`) {
		t.Errorf("state lacks the cancelled order or the stock:\n%s", first.State)
	}
}

// record runs five sagas on a dev stack and captures their records.
func record(ctx context.Context, t *testing.T, logs *syncBuffer) (capture.Header, []capture.Record, time.Duration) {
	t.Helper()
	all := suite.Addrs{Order: free, Inventory: free, Payment: free, Shipping: free, Notification: free}
	st, err := devstack.Start(ctx, devstack.Options{GRPC: all, Ops: all, KafkaAddr: free, MySQLAddr: free, MongoAddr: free,
		GatewayAddr: free, Catalog: catalog, OrderDeadline: 10 * time.Minute, LogLevel: config.LevelWarn, LogOutput: logs})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer st.Stop()
	conns, err := suite.Dial(st.GRPC, suite.WithToken(st.ToolToken("replay-test")))
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()
	began := time.Now()

	var ids, customers []string
	place := func(token, country, postal string, lines ...*commonv1.LineItem) string {
		t.Helper()
		req := &orderv1.CreateOrderRequest{CustomerId: uuid.NewString(), Currency: devstack.Currency, PaymentMethodToken: token,
			RequestId: uuid.NewString(), Lines: lines, ShippingAddress: &commonv1.Address{Name: "Ada Lovelace",
				Line1: "1 Analytical Street", City: "Berlin", PostalCode: postal, CountryCode: country}}
		resp, err := conns.Order.CreateOrder(ctx, req)
		if err != nil {
			t.Fatalf("CreateOrder: %v", err)
		}
		ids, customers = append(ids, resp.GetOrder().GetOrderId()), append(customers, req.GetCustomerId())
		return resp.GetOrder().GetOrderId()
	}
	await := func(id, want string) {
		t.Helper()
		o, err := bench.AwaitTerminal(ctx, conns.Order, id, 0)
		if err != nil {
			t.Fatalf("order %s did not end: %v", id, err)
		}
		if got := bench.Outcome(o); got != want {
			t.Fatalf("order %s ended %s, want %s", id, got, want)
		}
	}
	// startInventory brings inventory back once payment and shipping have
	// read every order event, the cancel included. Inventory then reserves
	// the cancelled order's stock and releases it; a payment still behind on
	// orders.v1 would read that STOCK_RESERVED before the cancel and charge
	// and refund — a valid history, but another one than this scenario's,
	// and a race between two topics the replay does not decide for a
	// service it did not hold.
	startInventory := func(orderID string) {
		t.Helper()
		consumed := map[string][]string{suite.Payment: {events.TopicOrders}, suite.Shipping: {events.TopicOrders}}
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute) // a bound for a hang, not a speed target
		defer wcancel()
		for {
			// The cancel is on the topic once notification has logged it
			// (the order's outbox relay publishes it after the commit).
			log, err := conns.Notification.GetSagaLog(wctx, &notificationv1.GetSagaLogRequest{OrderId: orderID})
			var why string
			if err == nil && slices.ContainsFunc(log.GetEvents(), func(e *eventsv1.Envelope) bool {
				return e.GetType() == eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED
			}) {
				why, err = wholesuite.Lagging(wctx, st.Servers.Kafka, st.Servers.TopicPrefix, consumed)
				if err == nil && why == "" {
					break
				}
			} else if err == nil {
				why = "ORDER_CANCELLED not in the saga log yet"
			}
			select {
			case <-wctx.Done():
				t.Fatalf("payment and shipping did not read every order event: %s %v", why, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
		if err := st.StartService(ctx, suite.Inventory); err != nil {
			t.Fatal(err)
		}
	}
	mug := func(n int32) *commonv1.LineItem {
		return &commonv1.LineItem{Sku: "RPL-MUG", Quantity: n, UnitPriceMinor: 1250}
	}
	tee := func(n int32) *commonv1.LineItem {
		return &commonv1.LineItem{Sku: "RPL-TEE", Quantity: n, UnitPriceMinor: 1999}
	}
	await(place("tok_visa", "DE", "10115", mug(2), tee(1)), "COMPLETED")
	await(place("tok_decline", "DE", "10115", tee(2)), "PAYMENT_FAILED")
	await(place("tok_visa", "AQ", "9999", mug(1)), "SHIPMENT_FAILED")
	// The customer cancel lands before inventory has seen the order: the
	// saga waits on a stopped inventory, as a slow one would make it.
	if err := st.StopService(ctx, suite.Inventory); err != nil {
		t.Fatal(err)
	}
	cancelled := place("tok_visa", "DE", "10115", mug(1))
	if _, err := conns.Order.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: cancelled, Reason: "changed my mind",
		RequestId: uuid.NewString()}); err != nil {
		t.Fatalf("CancelOrder: %v", err)
	}
	startInventory(cancelled)
	await(cancelled, "CUSTOMER_REQUESTED")
	// The deadline passes while inventory is down (a short deadline for this
	// order only; it times out however slow the machine is): the replay
	// moves its clock instead of waiting.
	if err := st.SetOrderDeadline(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := st.StopService(ctx, suite.Inventory); err != nil {
		t.Fatal(err)
	}
	expired := place("tok_visa", "DE", "10115", tee(1))
	await(expired, "TIMEOUT")
	startInventory(expired)
	// Compensations settle after the terminal state: wait for a clean audit.
	actx, acancel := context.WithTimeout(ctx, 3*time.Minute)
	defer acancel()
	if rep, err := audit.Await(actx, conns.Clients, audit.Scope{CustomerIDs: customers, SKUs: []string{"RPL-MUG", "RPL-TEE"}}, 100*time.Millisecond); err != nil {
		t.Fatalf("audit: %v (%v)", err, rep.Violations)
	}
	took := time.Since(began)

	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	header := capture.NewHeader("kafka://"+st.Servers.Kafka, "test", time.Now())
	header.Seed = &capture.Seed{}
	for _, p := range catalog {
		header.Seed.Products = append(header.Seed.Products, capture.SeedProduct{SKU: p.SKU, Name: p.Name, PriceMinor: p.Price,
			Currency: devstack.Currency, StockQuantity: p.Stock})
	}
	var recs []capture.Record
	header.Ranges, err = capture.Scan(ctx, capture.Source{Brokers: []string{st.Servers.Kafka}, Topics: events.AllTopics,
		Range: bus.ScanRange{From: -1, To: -1}, OrderIDs: want}, func(r capture.Record) error {
		recs = append(recs, r)
		return nil
	}, nil)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return header, recs, took
}

// root reports whether env is a root event the replay reproduces in full,
// occurred_at included: the clock is set from it before its stimulus.
func root(env *eventsv1.Envelope) bool {
	reason := env.GetOrderCancelled().GetReason()
	return env.GetType() == eventsv1.EventType_EVENT_TYPE_ORDER_CREATED ||
		(env.GetType() == eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED &&
			(reason == eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED || reason == eventsv1.CancelReason_CANCEL_REASON_TIMEOUT))
}

// differences compares every recorded event with the replay's by event id:
// same envelope, occurred_at of non-root events aside; and no extra events.
func differences(recorded, replayed []capture.Record) ([]string, error) {
	var out []string
	byID := map[string]*eventsv1.Envelope{}
	for _, r := range replayed {
		env, err := r.Event()
		if err != nil {
			return nil, fmt.Errorf("replayed record: %w", err)
		}
		byID[env.GetEventId()] = env
	}
	seen := map[string]bool{}
	for _, r := range recorded {
		want, err := r.Event()
		if err != nil {
			return nil, fmt.Errorf("recorded record: %w", err)
		}
		if seen[want.GetEventId()] {
			continue
		}
		seen[want.GetEventId()] = true
		got := byID[want.GetEventId()]
		name := fmt.Sprintf("%s %s of order %s", events.TypeName(want.GetType()), want.GetEventId(), want.GetOrderId())
		if got == nil {
			out = append(out, name+": not emitted by the replay")
			continue
		}
		if !root(want) {
			want, got = proto.Clone(want).(*eventsv1.Envelope), proto.Clone(got).(*eventsv1.Envelope)
			want.OccurredAt, got.OccurredAt = nil, nil
		}
		if !proto.Equal(want, got) {
			out = append(out, fmt.Sprintf("%s differs:\nrecorded %v\nreplayed %v", name, want, got))
		}
	}
	for id, env := range byID {
		if !seen[id] {
			out = append(out, fmt.Sprintf("the replay emitted %s %s of order %s, which the recording lacks", events.TypeName(env.GetType()), id, env.GetOrderId()))
		}
	}
	if len(seen) == 0 {
		out = append(out, "the recording holds no events")
	}
	sort.Strings(out)
	return out, nil
}

// tamper is recs with the first event of type typ changed by change.
func tamper(t *testing.T, recs []capture.Record, typ eventsv1.EventType, change func(*eventsv1.Envelope)) []capture.Record {
	t.Helper()
	out := slices.Clone(recs)
	for i, r := range out {
		env, err := r.Event()
		if err != nil || env.GetType() != typ {
			continue
		}
		change(env)
		if out[i].Envelope, err = capture.MarshalEnvelope(env); err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Fatalf("no %s recorded", events.TypeName(typ))
	return nil
}

// lineDiff lists the lines where a and b differ (at most 20).
func lineDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < max(len(la), len(lb)) && len(out) < 20; i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("line %d:\n  - %s\n  + %s", i+1, x, y))
		}
	}
	return strings.Join(out, "\n")
}

// syncBuffer is a bytes.Buffer safe for the services' concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
