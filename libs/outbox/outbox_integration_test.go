package outbox

// Integration tests against the real MariaDB and Kafka of the local stack.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/inbox"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

type fixture struct {
	db       *sql.DB
	dsn      string
	topic    string
	producer *bus.Producer
}

func newFixture(t testing.TB, partitions int) fixture {
	t.Helper()
	db, dsn := testenv.MySQLDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sqlstore.MigrateMessaging(ctx, db); err != nil {
		t.Fatal(err)
	}
	topic := testenv.UniqueName("test.outbox.")
	if err := bus.EnsureTopics(ctx, testenv.Brokers(), bus.TopicSpec{Name: topic, Partitions: partitions, ReplicationFactor: 1}); err != nil {
		t.Fatalf("Kafka for tests (SAGASUITE_KAFKA_BROKERS; run `make infra-up`): %v", err)
	}
	p := bus.NewProducer(testenv.Brokers())
	t.Cleanup(func() { p.Close() })
	return fixture{db: db, dsn: dsn, topic: topic, producer: p}
}

// message makes an outbox record for order whose event id derives from cause.
func (f fixture) message(t testing.TB, order, cause string) bus.Message {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: order, CustomerID: order, Producer: "test", CausationID: testenv.IDFor(cause), OccurredAt: time.Now()},
		&eventsv1.OrderCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := bus.EncodeEnvelope(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	m.Topic = f.topic
	return m
}

func (f fixture) write(t testing.TB, msgs ...bus.Message) {
	t.Helper()
	err := sqlstore.InTx(context.Background(), f.db, func(tx *sql.Tx) error { return Add(context.Background(), tx, time.Now(), msgs...) })
	if err != nil {
		t.Fatal(err)
	}
}

func (f fixture) backlog(t testing.TB) int64 {
	t.Helper()
	n, err := NewRelay(f.db, f.producer, RelayConfig{}).Backlog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// runRelay starts r and returns a stop function that waits for it.
func runRelay(t testing.TB, r *Relay) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("relay Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// consume runs a group consumer on the fixture's topic with handler h.
func (f fixture) consume(t testing.TB, h bus.Handler) {
	t.Helper()
	c, err := bus.NewConsumer(bus.ConsumerConfig{
		Brokers: testenv.Brokers(), Group: testenv.UniqueName("test-outbox-"), Topics: []string{f.topic},
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Writers commit in an order unlike their id order (random delays between
// insert and commit, some roll back). The relay runs the whole time. Every
// committed event must be published, no rolled-back one, and each key's
// events in the order they were committed.
func TestConcurrentWritersNeverMakeTheRelaySkipAnEvent(t *testing.T) {
	f := newFixture(t, 3)
	ctx := context.Background()
	runRelay(t, NewRelay(f.db, f.producer, RelayConfig{PollInterval: 5 * time.Millisecond, BatchSize: 50}))

	const writers, perWriter = 12, 40
	var mu sync.Mutex
	committed := map[string]int{} // event id -> sequence within its key
	rolledBack := map[string]bool{}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			order := events.NewID()
			seq := 0
			for i := 0; i < perWriter; i++ {
				m := f.message(t, order, fmt.Sprintf("w%d-%d", w, i))
				rollback := rand.IntN(10) == 0
				err := sqlstore.InTx(ctx, f.db, func(tx *sql.Tx) error {
					if err := Add(ctx, tx, time.Now(), m); err != nil {
						return err
					}
					time.Sleep(time.Duration(rand.IntN(8)) * time.Millisecond) // commit late
					if rollback {
						return errRollback
					}
					return nil
				})
				mu.Lock()
				id := m.Headers[bus.HeaderEventID]
				switch {
				case rollback && errors.Is(err, errRollback):
					rolledBack[id] = true
				case err == nil:
					committed[id] = seq
					seq++
				default:
					t.Errorf("writer %d: %v", w, err)
				}
				mu.Unlock()
			}
		}(w)
	}

	var got sync.Map // event id -> times seen
	var outOfOrder atomic.Int32
	var lastMu sync.Mutex
	last := map[string]int{}
	f.consume(t, func(ctx context.Context, env *eventsv1.Envelope) error {
		n, _ := got.LoadOrStore(env.GetEventId(), new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		mu.Lock()
		seq, ok := committed[env.GetEventId()]
		mu.Unlock()
		lastMu.Lock()
		defer lastMu.Unlock()
		if prev, seen := last[env.GetOrderId()]; ok && seen && seq <= prev {
			outOfOrder.Add(1)
		}
		if ok {
			last[env.GetOrderId()] = seq
		}
		return nil
	})
	wg.Wait()
	waitFor(t, "backlog to drain", func() bool { return f.backlog(t) == 0 })
	waitFor(t, "every committed event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for id := range committed {
			if _, ok := got.Load(id); !ok {
				return false
			}
		}
		return true
	})
	time.Sleep(200 * time.Millisecond) // let any stray record arrive
	mu.Lock()
	defer mu.Unlock()
	if len(committed) == 0 || len(rolledBack) == 0 {
		t.Fatalf("test did not exercise both paths: %d committed, %d rolled back", len(committed), len(rolledBack))
	}
	for id := range rolledBack {
		if _, ok := got.Load(id); ok {
			t.Errorf("rolled-back event %s was published", id)
		}
	}
	if n := outOfOrder.Load(); n > 0 {
		t.Errorf("%d events arrived out of their key's commit order", n)
	}
	t.Logf("%d committed, %d rolled back, all committed published", len(committed), len(rolledBack))
}

var errRollback = errors.New("rollback on purpose")

// The relay dies after Kafka acknowledged a batch but before marking it sent:
// the restarted relay publishes it again, and an inbox consumer applies each
// event's effect exactly once.
func TestRelayCrashBetweenPublishAndMarkSentIsAbsorbedByTheInbox(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	const n = 50
	var msgs []bus.Message
	order := events.NewID()
	for i := 0; i < n; i++ {
		msgs = append(msgs, f.message(t, order, fmt.Sprintf("crash-%d", i)))
	}
	f.write(t, msgs...)

	errCrash := errors.New("relay killed")
	crashing := NewRelay(f.db, f.producer, RelayConfig{BatchSize: n, afterPublish: func([]uint64) error { return errCrash }})
	if _, err := crashing.Flush(ctx); !errors.Is(err, errCrash) {
		t.Fatalf("crashing relay: %v", err)
	}
	if got := f.backlog(t); got != n {
		t.Fatalf("backlog after the crash = %d, want %d (nothing marked sent)", got, n)
	}
	runRelay(t, NewRelay(f.db, f.producer, RelayConfig{PollInterval: 5 * time.Millisecond}))
	waitFor(t, "restarted relay to drain", func() bool { return f.backlog(t) == 0 })

	// The consumer's store: the effect table and the inbox, in one database.
	effects, _ := testenv.MySQLDatabase(t)
	if err := sqlstore.MigrateMessaging(ctx, effects); err != nil {
		t.Fatal(err)
	}
	if _, err := effects.ExecContext(ctx, "CREATE TABLE applied (event_id VARCHAR(64) NOT NULL, n INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	var deliveries atomic.Int32
	f.consume(t, func(ctx context.Context, env *eventsv1.Envelope) error {
		deliveries.Add(1)
		return sqlstore.InTx(ctx, effects, func(tx *sql.Tx) error {
			first, err := inbox.Claim(ctx, tx, "test", env.GetEventId(), time.Now())
			if err != nil || !first {
				return err
			}
			_, err = tx.ExecContext(ctx, "INSERT INTO applied VALUES (?, 1)", env.GetEventId())
			return err
		})
	})
	waitFor(t, "both copies of every event", func() bool { return deliveries.Load() >= 2*n })
	var rows, distinct int
	if err := effects.QueryRowContext(ctx, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM applied").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if deliveries.Load() != 2*n || rows != n || distinct != n {
		t.Fatalf("deliveries=%d effects=%d distinct=%d, want %d deliveries and %d effects", deliveries.Load(), rows, distinct, 2*n, n)
	}
}

// With a lock name, a second relay is a standby: every event is published
// exactly once while both run, and the standby takes over when the active one stops.
func TestRelayLockKeepsOneActiveRelayAndFailsOver(t *testing.T) {
	f := newFixture(t, 1)
	lock := testenv.UniqueName("relay-")
	cfg := RelayConfig{PollInterval: 5 * time.Millisecond, LockName: lock, BatchSize: 10}
	stopFirst := runRelay(t, NewRelay(f.db, f.producer, cfg))
	var database string
	if err := f.db.QueryRow("SELECT DATABASE()").Scan(&database); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first relay to take the lock (scoped to its database)", func() bool {
		var used sql.NullInt64
		_ = f.db.QueryRow("SELECT IS_USED_LOCK(?)", scopedLockName(lock, database)).Scan(&used)
		return used.Valid
	})
	runRelay(t, NewRelay(f.db, f.producer, cfg))

	var deliveries atomic.Int32
	f.consume(t, func(context.Context, *eventsv1.Envelope) error { deliveries.Add(1); return nil })
	order := events.NewID()
	for i := 0; i < 100; i++ {
		f.write(t, f.message(t, order, fmt.Sprintf("a-%d", i)))
	}
	waitFor(t, "first 100", func() bool { return deliveries.Load() >= 100 })
	stopFirst()
	for i := 0; i < 20; i++ {
		f.write(t, f.message(t, order, fmt.Sprintf("b-%d", i)))
	}
	waitFor(t, "standby to publish the next 20", func() bool { return deliveries.Load() >= 120 })
	time.Sleep(200 * time.Millisecond)
	if got := deliveries.Load(); got != 120 {
		t.Fatalf("%d deliveries, want exactly 120 (one active relay, no duplicates)", got)
	}
}

func TestScopedLockNameFitsMySQLsLimit(t *testing.T) {
	if got := scopedLockName("order-outbox-relay", "t_abc"); got != "order-outbox-relay/t_abc" {
		t.Errorf("short name: %q", got)
	}
	long := scopedLockName("order-outbox-relay", strings.Repeat("d", 64))
	other := scopedLockName("order-outbox-relay", strings.Repeat("e", 64))
	if len(long) > 64 || long == other || !strings.HasPrefix(long, "order-outbox-relay/") {
		t.Errorf("long names %q and %q: must fit 64 characters and differ", long, other)
	}
}

// BenchmarkRelayThroughput measures how fast the relay drains a backlog into
// Kafka (read batch, publish with acks=all, mark sent). Reports events/s.
func BenchmarkRelayThroughput(b *testing.B) {
	b.StopTimer()
	f := newFixture(b, 3)
	ctx := context.Background()
	const chunk = 500
	for done := 0; done < b.N; done += chunk {
		var msgs []bus.Message
		for i := done; i < done+chunk && i < b.N; i++ {
			msgs = append(msgs, f.message(b, events.NewID(), fmt.Sprintf("bench-%d", i)))
		}
		f.write(b, msgs...)
	}
	r := NewRelay(f.db, f.producer, RelayConfig{BatchSize: 500})
	b.StartTimer()
	start := time.Now()
	for published := 0; published < b.N; {
		n, err := r.Flush(ctx)
		if err != nil {
			b.Fatal(err)
		}
		published += n
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// blockingPublisher holds every Publish until released, so rows stay unsent.
type blockingPublisher struct{ release chan struct{} }

func (b blockingPublisher) Publish(ctx context.Context, _ ...bus.Message) error {
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// The backlog and oldest-unsent-age gauges report committed rows not yet
// published while the relay runs, and fall to zero once they are out.
func TestBacklogGaugeReportsUnsentRows(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	t.Cleanup(func() { otel.SetMeterProvider(noop.NewMeterProvider()) })
	f := newFixture(t, 1)
	order := events.NewID()
	for i := 0; i < 3; i++ {
		f.write(t, f.message(t, order, fmt.Sprintf("gauge-%d", i)))
	}
	pub := blockingPublisher{release: make(chan struct{})}
	relay := NewRelay(f.db, pub, RelayConfig{PollInterval: 5 * time.Millisecond})
	runRelay(t, relay)
	backlog := func() int64 {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == "sagasuite.outbox.backlog" && len(g.DataPoints) == 1 {
					return g.DataPoints[0].Value
				}
			}
		}
		return -1
	}
	oldestAge := func() float64 {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if g, ok := m.Data.(metricdata.Gauge[float64]); ok && m.Name == "sagasuite.outbox.oldest_unsent_age" && len(g.DataPoints) == 1 {
					return g.DataPoints[0].Value
				}
			}
		}
		return -1
	}
	waitFor(t, "backlog gauge 3 while the publisher is stuck", func() bool { return backlog() == 3 })
	waitFor(t, "oldest unsent age above zero while stuck", func() bool { return oldestAge() > 0 })
	// The operations API reads the same figures through Admin.Counts.
	counts, err := relay.Counts(context.Background())
	if err != nil || counts.Backlog != 3 || counts.Parked != 0 || counts.OldestUnsent.IsZero() || counts.OldestUnsent.Location() != time.UTC {
		t.Fatalf("Counts while stuck = %+v, %v; want 3 unsent rows, none parked, the oldest's UTC time", counts, err)
	}
	close(pub.release)
	waitFor(t, "backlog gauge 0 once published", func() bool { return backlog() == 0 })
	waitFor(t, "oldest unsent age 0 once published", func() bool { return oldestAge() == 0 })
}

// barrierPublisher reads the durability barrier's time while publishing.
type barrierPublisher struct {
	db *sql.DB
	at *time.Time
}

func (b barrierPublisher) Publish(ctx context.Context, _ ...bus.Message) error {
	return b.db.QueryRowContext(ctx, "SELECT at FROM outbox_barrier WHERE id = 1").Scan(b.at)
}

// The relay commits its durability barrier after reading a batch and before
// publishing it (rows of a transaction a crash could still lose must not leave).
func TestRelayCommitsTheDurabilityBarrierBeforePublishing(t *testing.T) {
	f := newFixture(t, 1)
	written := time.Now().UTC().Add(-time.Millisecond) // the DB clock's precision
	f.write(t, f.message(t, events.NewID(), "barrier"))
	var at time.Time
	r := NewRelay(f.db, barrierPublisher{db: f.db, at: &at}, RelayConfig{})
	n, err := r.Flush(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Flush = %d, %v; want 1 row published", n, err)
	}
	if at.Before(written) {
		t.Fatalf("barrier at %v while publishing, before the row was written (%v): not committed before the publish", at, written)
	}
}

// gracePublisher holds a publish until released and then fails it when its
// context has ended, as a real producer cut mid-request does.
type gracePublisher struct{ inFlight, release chan struct{} }

func (g gracePublisher) Publish(ctx context.Context, _ ...bus.Message) error {
	g.inFlight <- struct{}{}
	<-g.release
	return ctx.Err()
}

// A relay stopped while a publish is in flight lets it finish and marks what
// went out, so the next active relay does not publish it again.
func TestStoppingRelayFinishesThePublishInFlight(t *testing.T) {
	f := newFixture(t, 1)
	f.write(t, f.message(t, events.NewID(), "in-flight"))
	pub := gracePublisher{inFlight: make(chan struct{}, 1), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewRelay(f.db, pub, RelayConfig{PollInterval: 5 * time.Millisecond}).Run(ctx) }()
	select {
	case <-pub.inFlight:
	case <-time.After(2 * time.Minute): // a bound for a hang
		t.Fatal("the relay never published")
	}
	cancel() // the stop arrives while the publish is under way
	close(pub.release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(2 * time.Minute): // a bound for a hang
		t.Fatal("the relay did not stop")
	}
	if n := f.backlog(t); n != 0 {
		t.Fatalf("%d rows left unsent after a stop during their publish, want 0 (they reached the broker)", n)
	}
}
