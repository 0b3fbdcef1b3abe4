package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/outbox"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/replay"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

const free = "127.0.0.1:0"

// storedRecording is a recording of the four sagas record places, kept so
// sagactl's test and TestReplayStoredRecording replay it without a suite;
// `go test -run TestReplayEachService -update-recording` makes it again.
const storedRecording = "testdata/four-sagas.jsonl"

var updateRecording = flag.Bool("update-recording", false, "rewrite "+storedRecording+" from a fresh recording")

// One recording of a few sagas on the whole in-process suite, replayed into
// each event-consuming service alone: the service emits exactly the events
// it emitted when recorded (same derived ids, proto-equal payloads, same
// occurred_at), nothing more, and a second replay writes byte-identical
// files.
func TestReplayEachServiceReproducesTheRecording(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	dir := t.TempDir()
	recPath := filepath.Join(dir, "recording.jsonl")
	header, recs, orders := record(ctx, t)
	if err := capture.WriteFile(recPath, header, recs); err != nil {
		t.Fatal(err)
	}
	if *updateRecording {
		if err := capture.WriteFile(storedRecording, header, recs); err != nil {
			t.Fatal(err)
		}
	}
	// Replays read the file back, as sagactl does.
	header, recs, err := capture.ReadFile(recPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, service := range replay.Supported {
		t.Run(service, func(t *testing.T) {
			var files [2][2][]byte
			for run := range 2 {
				logs := &syncBuffer{}
				res, err := replay.Service(ctx, replay.Options{Service: service, Header: header, Records: recs, LogOutput: logs, ToolVersion: "test"})
				if err != nil {
					t.Fatalf("replay %d: %v\nservice logs:\n%s", run+1, err, logs.String())
				}
				t.Logf("replay %d of %s: %d records delivered in %s (%.0f records/s; the recording spans %s: %.1f× real time)",
					run+1, service, res.Delivered, res.Elapsed.Round(time.Millisecond), float64(res.Delivered)/res.Elapsed.Seconds(),
					res.Recorded.Round(time.Millisecond), res.Recorded.Seconds()/res.Elapsed.Seconds())
				emitted, state := filepath.Join(dir, fmt.Sprintf("%s-%d.jsonl", service, run)), filepath.Join(dir, fmt.Sprintf("%s-%d.json", service, run))
				if err := res.WriteFiles(emitted, state); err != nil {
					t.Fatal(err)
				}
				for i, p := range []string{emitted, state} {
					if files[run][i], err = os.ReadFile(p); err != nil {
						t.Fatal(err)
					}
				}
				if run == 0 {
					checkEmitted(t, service, recs, res.Emitted)
					checkState(t, service, recs, orders, res.State)
				}
			}
			for i, kind := range []string{"emitted records", "end state"} {
				if !bytes.Equal(files[0][i], files[1][i]) {
					t.Errorf("the two replays' %s differ:\n--- first\n%s\n--- second\n%s", kind, files[0][i], files[1][i])
				}
			}
		})
	}
}

// The stored recording, made by an earlier build, replays into today's code
// of each service with exactly the recorded events.
func TestReplayStoredRecording(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	header, recs, err := capture.ReadFile(storedRecording)
	if err != nil {
		t.Fatal(err)
	}
	for _, service := range replay.Supported {
		t.Run(service, func(t *testing.T) {
			logs := &syncBuffer{}
			res, err := replay.Service(ctx, replay.Options{Service: service, Header: header, Records: recs, LogOutput: logs})
			if err != nil {
				t.Fatalf("replay: %v\nservice logs:\n%s", err, logs.String())
			}
			checkEmitted(t, service, recs, res.Emitted)
		})
	}
}

// checkEmitted compares the replay's records with what service emitted in
// the recording: the same event ids, topics and keys, proto-equal envelopes.
func checkEmitted(t *testing.T, service string, recorded, emitted []capture.Record) {
	t.Helper()
	want := map[string]*eventsv1.Envelope{}
	wantKey := map[string]string{}
	for _, r := range recorded {
		env, err := r.Event()
		if err != nil || env.GetProducer() != service {
			continue
		}
		want[env.GetEventId()], wantKey[env.GetEventId()] = env, r.Topic+"/"+r.Key
	}
	if service != suite.Notification && len(want) == 0 {
		t.Fatalf("the recording holds no event of %s: nothing to compare", service)
	}
	seen := map[string]bool{}
	for _, r := range emitted {
		env, err := r.Event()
		if err != nil {
			t.Errorf("emitted %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			continue
		}
		id := env.GetEventId()
		if seen[id] {
			t.Errorf("event %s (%s) emitted twice", id, events.TypeName(env.GetType()))
		}
		seen[id] = true
		rec, ok := want[id]
		switch {
		case !ok:
			t.Errorf("extra event %s: %v", id, env)
		case !proto.Equal(rec, env):
			t.Errorf("event %s (%s) differs:\n recorded %v\n replayed %v", id, events.TypeName(env.GetType()), rec, env)
		case wantKey[id] != r.Topic+"/"+r.Key:
			t.Errorf("event %s on %s/%s, recorded on %s", id, r.Topic, r.Key, wantKey[id])
		}
	}
	for id, env := range want {
		if !seen[id] {
			t.Errorf("missing event %s (%s) of order %s", id, events.TypeName(env.GetType()), env.GetOrderId())
		}
	}
	t.Logf("%s: %d events emitted again, %d recorded", service, len(seen), len(want))
}

// checkState checks what the end state must hold whatever the service:
// every placed order appears; notification's saga logs hold every recorded
// event of each order.
func checkState(t *testing.T, service string, recorded []capture.Record, orders []string, state []byte) {
	t.Helper()
	var s replay.State
	if err := json.Unmarshal(state, &s); err != nil {
		t.Fatalf("state: %v\n%s", err, state)
	}
	switch service {
	case suite.Inventory:
		if len(s.Products) != len(devstack.DefaultCatalog) {
			t.Errorf("state lists %d products, want %d:\n%s", len(s.Products), len(devstack.DefaultCatalog), state)
		}
	case suite.Notification:
		byOrder := map[string]map[string]bool{}
		for _, r := range recorded {
			if env, err := r.Event(); err == nil {
				if byOrder[env.GetOrderId()] == nil {
					byOrder[env.GetOrderId()] = map[string]bool{}
				}
				byOrder[env.GetOrderId()][env.GetEventId()] = true
			}
		}
		for _, id := range orders {
			var log struct {
				Events []struct {
					EventID string `json:"event_id"`
				} `json:"events"`
			}
			if err := json.Unmarshal(s.SagaLogs[id], &log); err != nil {
				t.Fatalf("saga log of %s: %v", id, err)
			}
			got := map[string]bool{}
			for _, e := range log.Events {
				got[e.EventID] = true
			}
			if len(got) != len(byOrder[id]) {
				t.Errorf("saga log of %s holds %d events, the recording %d", id, len(got), len(byOrder[id]))
			}
			for e := range byOrder[id] {
				if !got[e] {
					t.Errorf("saga log of %s lacks event %s", id, e)
				}
			}
		}
	case suite.Payment, suite.Shipping:
		m := s.Payments
		if service == suite.Shipping {
			m = s.Shipments
		}
		for _, id := range orders {
			if _, ok := m[id]; !ok {
				t.Errorf("state has no entry for order %s:\n%s", id, state)
			}
		}
	}
}

// record runs a few sagas (success, payment declined, shipment failed, out
// of stock) on the whole in-process suite, waits until the suite is at
// rest, and captures every saga topic. It returns the placed order ids.
func record(ctx context.Context, t *testing.T) (capture.Header, []capture.Record, []string) {
	t.Helper()
	logs := &syncBuffer{}
	all := suite.Addrs{Order: free, Inventory: free, Payment: free, Shipping: free, Notification: free}
	st, err := devstack.Start(ctx, devstack.Options{GRPC: all, Ops: all, KafkaAddr: free, MySQLAddr: free, MongoAddr: free,
		GatewayAddr: free, OrderDeadline: 10 * time.Minute, LogLevel: config.LevelWarn, LogOutput: logs, ReadyTimeout: 3 * time.Minute})
	if err != nil {
		t.Fatalf("start the recording stack: %v", err)
	}
	defer st.Stop()
	defer func() {
		if t.Failed() {
			t.Logf("recording stack logs:\n%s", logs.String())
		}
	}()
	token := st.ToolToken("replay-test")
	conns, err := suite.Dial(st.GRPC, suite.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()
	place := func(sku string, qty int32, price int64, payToken, country, postal string) string {
		t.Helper()
		resp, err := conns.Order.CreateOrder(ctx, &orderv1.CreateOrderRequest{
			CustomerId: uuid.NewString(), Currency: devstack.Currency, PaymentMethodToken: payToken, RequestId: uuid.NewString(),
			Lines: []*commonv1.LineItem{{Sku: sku, Quantity: qty, UnitPriceMinor: price}},
			ShippingAddress: &commonv1.Address{Name: "Ada Lovelace", Line1: "1 Analytical Street", City: "Berlin",
				PostalCode: postal, CountryCode: country},
		})
		if err != nil {
			t.Fatalf("CreateOrder %s: %v", sku, err)
		}
		return resp.GetOrder().GetOrderId()
	}
	orders := []string{
		place("DEV-MUG", 1, 1250, "tok_visa", "DE", "10115"),       // completed
		place("DEV-TSHIRT", 2, 2490, "tok_decline", "DE", "10115"), // payment declined
		place("DEV-MUG", 1, 1250, "tok_visa", "AQ", "9999"),        // shipment failed
		place("DEV-POSTER", 1, 1500, "tok_visa", "DE", "10115"),    // out of stock
	}
	for _, id := range orders {
		deadline := time.Now().Add(3 * time.Minute) // a saga that never ends, not a slow one
		for {
			resp, err := conns.Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: id})
			if err == nil && resp.GetOrder().GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s still pending after 3 min (last error %v)", id, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	brokers := strings.Split(st.Servers.Kafka, ",")
	awaitRest(ctx, t, brokers, st, token)

	header := capture.NewHeader("devstack test", "test", time.Now())
	header.Seed = &capture.Seed{}
	for _, p := range devstack.DefaultCatalog {
		header.Seed.Products = append(header.Seed.Products, capture.SeedProduct{SKU: p.SKU, Name: p.Name, PriceMinor: p.Price,
			Currency: devstack.Currency, StockQuantity: p.Stock})
	}
	var recs []capture.Record
	header.Ranges, err = capture.Scan(ctx, capture.Source{Brokers: brokers, Topics: events.AllTopics, Range: bus.ScanRange{From: -1, To: -1}},
		func(r capture.Record) error { recs = append(recs, r); return nil }, nil)
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	t.Logf("recorded %d records of %d orders", len(recs), len(orders))
	return header, recs, orders
}

// awaitRest waits until the suite can emit nothing more: every outbox empty
// and every consumer group committed up to the end of each topic it reads,
// with the end offsets unchanged around the check, twice in a row.
func awaitRest(ctx context.Context, t *testing.T, brokers []string, st *devstack.Stack, token suite.TokenSource) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}
	ends := func() (map[string]int64, error) {
		req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
		for _, topic := range events.AllTopics {
			for p := range 3 {
				req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
			}
		}
		resp, err := client.ListOffsets(ctx, req)
		if err != nil {
			return nil, err
		}
		out := map[string]int64{}
		for topic, parts := range resp.Topics {
			for _, p := range parts {
				if p.Error != nil {
					return nil, fmt.Errorf("end offset of %s/%d: %w", topic, p.Partition, p.Error)
				}
				out[fmt.Sprintf("%s/%d", topic, p.Partition)] = p.LastOffset
			}
		}
		return out, nil
	}
	atRest := func() (bool, string) {
		for _, name := range []string{suite.Order, suite.Inventory, suite.Payment, suite.Shipping} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+st.Ops.Of(name)+outbox.AdminListPath+"?state=pending&limit=1", nil)
			if err := suite.Authorize(req, token); err != nil {
				return false, err.Error()
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false, err.Error()
			}
			var list outbox.AdminList
			err = json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			if err != nil || len(list.Rows) > 0 {
				return false, fmt.Sprintf("%s outbox: %d pending (%v)", name, len(list.Rows), err)
			}
		}
		before, err := ends()
		if err != nil {
			return false, err.Error()
		}
		for service, topics := range replay.Consumes {
			req := &kafka.OffsetFetchRequest{GroupID: service, Topics: map[string][]int{}}
			for _, topic := range topics {
				req.Topics[topic] = []int{0, 1, 2}
			}
			resp, err := client.OffsetFetch(ctx, req)
			if err != nil {
				return false, err.Error()
			}
			for _, topic := range topics {
				for _, c := range resp.Topics[topic] {
					if end := before[fmt.Sprintf("%s/%d", topic, c.Partition)]; max(c.CommittedOffset, 0) < end {
						return false, fmt.Sprintf("group %s at %d of %s/%d (end %d)", service, c.CommittedOffset, topic, c.Partition, end)
					}
				}
			}
		}
		after, err := ends()
		if err != nil {
			return false, err.Error()
		}
		return maps.Equal(before, after), "end offsets moved"
	}
	deadline := time.Now().Add(3 * time.Minute)
	calm := 0
	for calm < 2 {
		ok, why := atRest()
		if ok {
			calm++
			continue
		}
		calm = 0
		if time.Now().After(deadline) {
			t.Fatalf("the suite did not come to rest within 3 min: %s", why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the services' concurrent logging.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
