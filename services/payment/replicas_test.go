package payment_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/payment"
	"github.com/sagasuite/sagasuite/services/payment/internal/adapters/simgateway"
)

// recorder records every request that reaches the gateway and how it ended:
// the test's view of the wire, beside the gateway's own ledger.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int // "POST /v1/charges 200", "… aborted", …
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			outcome := fmt.Sprint(sw.code)
			p := recover()
			if p != nil {
				outcome = "aborted"
			}
			path := req.URL.Path
			if strings.Count(path, "/") > 2 {
				path = path[:strings.LastIndex(path, "/")] + "/{key}"
			}
			r.mu.Lock()
			r.calls[req.Method+" "+path+" "+outcome]++
			r.mu.Unlock()
			if p != nil {
				panic(p)
			}
		}()
		h.ServeHTTP(sw, req)
	})
}

func (r *recorder) count(call string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[call]
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }

// replica runs payment through RunWith and, when a crash hook kills it,
// starts it again, until the test ends.
type replica struct {
	name    string
	cfg     payment.Config
	crash   func(op, orderID string) bool // whether to die after this call
	crashes atomic.Int64
	starts  atomic.Int64
	ready   chan struct{} // closed when the first start answers /readyz
	once    sync.Once
}

// awaitReady polls the ops address's /readyz until 200 (the consumer group
// joined, topics made), then closes r.ready.
func (r *replica) awaitReady(ops net.Addr) {
	go func() {
		for deadline := time.Now().Add(servicetest.Wait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			resp, err := http.Get("http://" + ops.String() + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					r.once.Do(func() { close(r.ready) })
					return
				}
			}
		}
	}()
}

func (r *replica) run(t *testing.T, stop context.Context) <-chan error {
	done := make(chan error, 1)
	go func() {
		for stop.Err() == nil {
			ctx, kill := context.WithCancel(stop)
			r.starts.Add(1)
			hooks := payment.Hooks{AfterGatewayCall: func(_ context.Context, op, orderID string) error {
				if !r.crash(op, orderID) {
					return nil
				}
				r.crashes.Add(1)
				kill() // the whole process goes; this call's answer is never recorded
				return fmt.Errorf("%s crashed after the gateway's %s of order %s", r.name, op, orderID)
			}}
			rt := service.Runtime{SharedTelemetry: true, Registry: prometheus.NewRegistry(), Verifier: servicetest.Verifier(t),
				OnListening: func(_, ops net.Addr) { r.awaitReady(ops) }}
			if err := payment.RunWith(ctx, r.cfg, rt, hooks); err != nil && stop.Err() == nil {
				kill()
				done <- fmt.Errorf("%s: %w", r.name, err)
				return
			}
			kill()
		}
		done <- nil
	}()
	return done
}

// Two payment replicas on one database and one consumer group, a gateway
// that is slow, answers 5xx and times out with unknown outcomes, STOCK_RESERVED
// racing ORDER_CANCELLED for 200 orders, and replicas dying between a
// gateway call and the record of its answer (then restarted; the sweeper of
// either replica finishes what they left). Afterwards, for every order, the
// gateway's ledger (charges − refunds) equals the money payment holds as
// captured, and payment emitted exactly the events its outcome implies.
func TestTwoReplicasRacingChargeAndCancelWithCrashesKeepTheGatewayLedgerExact(t *testing.T) {
	if testing.Short() {
		t.Skip("the replica race takes a while")
	}
	db, dsn := testenv.MySQLDatabase(t)
	prefix := testenv.UniqueName("paymentreplicas-") + "."
	kafka := servicetest.SagaTopics(t, service.KafkaConfig{Brokers: testenv.Brokers(), TopicPrefix: prefix, Partitions: 4, ReplicationFactor: 1})

	gw, err := simgateway.Open(simgateway.Config{LedgerPath: filepath.Join(t.TempDir(), "ledger.jsonl"),
		Faults: simgateway.Faults{ErrorRate: 0.05, TimeoutRate: 0.08, SlowRate: 0.02, SlowDelay: 1500 * time.Millisecond, Seed: 13}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	rec := &recorder{calls: map[string]int{}}
	srv := httptest.NewServer(rec.wrap(gw.Handler()))
	t.Cleanup(srv.Close)

	const orders = 200
	all := make([]order, orders)
	cancelled := map[string]bool{}
	crashAfter := map[string]string{} // order → the call after which a replica dies (once)
	for i := range all {
		all[i] = order{id: testenv.IDFor(fmt.Sprintf("%s/%d", t.Name(), i)), customer: testenv.IDFor(t.Name() + "/customer")}
		cancelled[all[i].id] = i%3 != 0
		switch i % 10 {
		case 3:
			crashAfter[all[i].id] = "charge"
		case 7:
			crashAfter[all[i].id] = "refund"
		}
	}
	var crashed sync.Map
	crash := func(op, orderID string) bool {
		if crashAfter[orderID] != op {
			return false
		}
		_, again := crashed.LoadOrStore(op+"/"+orderID, true)
		return !again
	}
	cfg := payment.Config{
		Common: servicetest.Common(), KafkaConfig: kafka, MySQLDSN: dsn, MySQLMaxOpenConns: 8,
		GatewayURL: srv.URL, GatewayTimeout: time.Second,
		IntentLease: 2 * time.Second, SweepInterval: 200 * time.Millisecond,
	}
	replicas := []*replica{{name: "replica-a", cfg: cfg, crash: crash, ready: make(chan struct{})},
		{name: "replica-b", cfg: cfg, crash: crash, ready: make(chan struct{})}}
	stop, stopAll := context.WithCancel(context.Background())
	var dones []<-chan error
	t.Cleanup(func() {
		stopAll()
		for _, d := range dones {
			if err := <-d; err != nil {
				t.Error(err)
			}
		}
	})
	// Both start at once on the empty database (the migration lock).
	for _, r := range replicas {
		dones = append(dones, r.run(t, stop))
	}
	for _, r := range replicas {
		select {
		case <-r.ready:
		case <-time.After(servicetest.Wait):
			t.Fatalf("%s not ready within %s", r.name, servicetest.Wait)
		}
	}
	seen := collect(t, kafka, prefix+events.TopicPayments, prefix+payment.Name+".dlq")

	// Every STOCK_RESERVED and ORDER_CANCELLED, shuffled, in batches: the two
	// topics reach the replicas in any order.
	var msgs []*eventsv1.Envelope
	for i, o := range all {
		token := "tok_visa"
		if i%9 == 4 {
			token = simgateway.TokenDecline
		}
		msgs = append(msgs, envelope(t, o, stockReserved(token, 1000+int64(i))))
		if cancelled[o.id] {
			msgs = append(msgs, envelope(t, o, orderCancelled()))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	pub := bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(prefix))
	t.Cleanup(func() { pub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // bounds for hangs only
	defer cancel()
	for start := 0; start < len(msgs); start += 25 {
		var batch []bus.Message
		for _, env := range msgs[start:min(start+25, len(msgs))] {
			m, err := bus.EncodeEnvelope(ctx, env)
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, m)
		}
		if err := pub.Publish(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}

	// Wait until every order's payment is decided as its events allow.
	type row struct {
		status   string
		amount   int64
		refunded int64
	}
	read := func() (map[string]row, error) {
		rows, err := db.QueryContext(ctx, `SELECT p.order_id, p.status, p.amount_minor, COALESCE(r.amount_minor, 0)
			FROM payments p LEFT JOIN refunds r ON r.order_id = p.order_id`)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[string]row{}
		for rows.Next() {
			var id string
			var r row
			if err := rows.Scan(&id, &r.status, &r.amount, &r.refunded); err != nil {
				return nil, err
			}
			out[id] = r
		}
		return out, rows.Err()
	}
	settled := func(rows map[string]row) string {
		var processed int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM inbox WHERE consumer = ?", payment.Name).Scan(&processed); err != nil {
			return err.Error()
		}
		if processed != len(msgs) {
			return fmt.Sprintf("%d of %d events processed", processed, len(msgs))
		}
		for _, o := range all {
			r, ok := rows[o.id]
			switch {
			case !ok:
				return "order " + o.id + " has no payment record"
			case r.status == "CHARGE_PENDING" || r.status == "REFUND_PENDING":
				return "order " + o.id + " is " + r.status
			case cancelled[o.id] && r.status == "CAPTURED":
				return "cancelled order " + o.id + " is still CAPTURED"
			}
		}
		return ""
	}
	var rows map[string]row
	var last string
	deadline := time.Now().Add(4 * time.Minute)
	for {
		rows, err = read()
		if err == nil {
			if last = settled(rows); last == "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("payments not settled within 4 min: %s (%v)", last, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Money: per order, the gateway's net equals payment's captured net.
	client, err := simgateway.NewClient(srv.URL, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	want := map[string][]eventsv1.EventType{}
	var captured, refunded, failed, tombstones int
	for _, o := range all {
		r := rows[o.id]
		var acct simgateway.Account
		for {
			acct, err = client.Account(ctx, o.id)
			if !errors.Is(err, simgateway.ErrUnavailable) {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		held := int64(0)
		switch r.status {
		case "CAPTURED":
			captured++
			held = r.amount
			want[o.id] = []eventsv1.EventType{processedType}
		case "REFUNDED":
			refunded++
			held = r.amount - r.refunded
			want[o.id] = []eventsv1.EventType{processedType, refundedType}
		case "FAILED":
			failed++
			want[o.id] = []eventsv1.EventType{failedType}
		case "CANCELLED":
			tombstones++
		default:
			t.Fatalf("order %s: status %s", o.id, r.status)
		}
		if acct.NetMinor != held {
			t.Errorf("order %s (%s): gateway holds %d (charge %+v, %d refunds), payment holds %d", o.id, r.status, acct.NetMinor,
				acct.Charge, len(acct.Refunds), held)
		}
		if cancelled[o.id] && held != 0 {
			t.Errorf("cancelled order %s keeps %d", o.id, held)
		}
		if len(acct.Refunds) > 1 {
			t.Errorf("order %s refunded %d times at the gateway", o.id, len(acct.Refunds))
		}
	}

	// Events: each outcome's events exactly once in the outbox, and on the topic.
	for _, o := range all {
		var got []string
		rowsOut, err := db.QueryContext(ctx, "SELECT payload FROM outbox WHERE msg_key = ? ORDER BY id", o.id)
		if err != nil {
			t.Fatal(err)
		}
		for rowsOut.Next() {
			var b []byte
			if err := rowsOut.Scan(&b); err != nil {
				t.Fatal(err)
			}
			env, err := events.Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, events.TypeName(env.GetType()))
		}
		rowsOut.Close()
		var wantNames []string
		for _, typ := range want[o.id] {
			wantNames = append(wantNames, events.TypeName(typ))
		}
		if fmt.Sprint(got) != fmt.Sprint(wantNames) {
			t.Errorf("order %s (%s): outbox holds %v, want %v", o.id, rows[o.id].status, got, wantNames)
		}
		for _, typ := range want[o.id] {
			seen.wait(t, o.id, typ)
		}
	}
	if dead := seen.deadLettered(); len(dead) != 0 {
		t.Errorf("%d events dead-lettered, first %s", len(dead), events.TypeName(dead[0].GetType()))
	}

	var crashes int64
	for _, r := range replicas {
		crashes += r.crashes.Load()
	}
	t.Logf("%d orders: %d captured, %d refunded, %d declined, %d cancelled before any charge; %d crashes between call and record; gateway calls %v",
		orders, captured, refunded, failed, tombstones, crashes, rec.calls)
	if crashes == 0 || rec.count("POST /v1/charges aborted") == 0 || rec.count("POST /v1/charges 503") == 0 {
		t.Errorf("the run did not exercise what it is for: %d crashes, gateway calls %v", crashes, rec.calls)
	}
	if refunded == 0 || captured == 0 || failed == 0 {
		t.Errorf("outcomes %d captured, %d refunded, %d failed: every kind should occur", captured, refunded, failed)
	}
}

func envelope(t *testing.T, o order, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: o.id, CustomerID: o.customer, Producer: "test",
		CausationID: events.NewID(), OccurredAt: time.Now()}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}
