package outbox

// Integration tests of the relay's outage and poison-row behaviour, against
// the real MariaDB and Kafka of the local stack.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// recordingPublisher publishes through a real producer and records, per
// call, which event ids went out and whether Kafka acknowledged them, and
// how many calls were in flight at once (across every relay sharing it).
type recordingPublisher struct {
	pub      Publisher
	inFlight *atomic.Int32
	maxSeen  *atomic.Int32
	calls    atomic.Int32

	mu  sync.Mutex
	log []publishCall
}

type publishCall struct {
	ids []string
	err error
}

func newRecordingPublisher(pub Publisher) *recordingPublisher {
	return &recordingPublisher{pub: pub, inFlight: new(atomic.Int32), maxSeen: new(atomic.Int32)}
}

// sharing returns a recorder over pub that counts in-flight calls together with p.
func (p *recordingPublisher) sharing(pub Publisher) *recordingPublisher {
	return &recordingPublisher{pub: pub, inFlight: p.inFlight, maxSeen: p.maxSeen}
}

func (p *recordingPublisher) Publish(ctx context.Context, msgs ...bus.Message) error {
	n := p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	for {
		seen := p.maxSeen.Load()
		if n <= seen || p.maxSeen.CompareAndSwap(seen, n) {
			break
		}
	}
	p.calls.Add(1)
	err := p.pub.Publish(ctx, msgs...)
	call := publishCall{err: err}
	for _, m := range msgs {
		call.ids = append(call.ids, m.Headers[bus.HeaderEventID])
	}
	p.mu.Lock()
	p.log = append(p.log, call)
	p.mu.Unlock()
	return err
}

// failedCallsBefore counts the failed calls that carried id before the first
// successful call carrying until, and whether there was one.
func (p *recordingPublisher) failedCallsBefore(id, until string) (failed int, untilSeen bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.log {
		has := func(x string) bool {
			for _, y := range c.ids {
				if y == x {
					return true
				}
			}
			return false
		}
		if c.err == nil && until != "" && has(until) {
			return failed, true
		}
		if c.err != nil && has(id) {
			failed++
		}
	}
	return failed, false
}

func (f fixture) rowState(t testing.TB, eventID string) (attempts int, parked, sent bool, lastError string) {
	t.Helper()
	var (
		parkedAt, sentAt sql.NullTime
		last             sql.NullString
	)
	err := f.db.QueryRow("SELECT attempts, parked_at, sent_at, last_error FROM outbox WHERE event_id = ?", eventID).
		Scan(&attempts, &parkedAt, &sentAt, &last)
	if err != nil {
		t.Fatalf("outbox row %s: %v", eventID, err)
	}
	return attempts, parkedAt.Valid, sentAt.Valid, last.String
}

func eventIDOf(m bus.Message) string { return m.Headers[bus.HeaderEventID] }

// A row to a topic that does not exist and a row too large for Kafka are
// tried MaxAttempts times and parked with the reason; every other row is
// published meanwhile — including the later row of the oversize row's key on
// its topic, but only once that row is parked. Un-parking the missing-topic row
// after the topic is created publishes it.
func TestPoisonRowsAreParkedAndTheRowsBehindThemPublished(t *testing.T) {
	f := newFixture(t, 3)
	ctx := context.Background()
	missingTopic := testenv.UniqueName("test.outbox.missing.")
	keyB, keyC := events.NewID(), events.NewID()

	var good []bus.Message
	for i := 0; i < 5; i++ {
		good = append(good, f.message(t, events.NewID(), fmt.Sprintf("good-%d", i)))
	}
	toMissing := f.message(t, keyB, "to-missing-topic")
	toMissing.Topic = missingTopic
	oversize := f.message(t, keyC, "oversize")
	oversize.Value = bytes.Repeat([]byte{1}, 2<<20)       // above the producer's 1 MiB batch limit
	afterMissing := f.message(t, keyB, "after-missing")   // same key, another topic: not held
	afterOversize := f.message(t, keyC, "after-oversize") // same key and topic: held until the oversize row is parked
	f.write(t, good[0], toMissing, oversize, good[1], good[2])
	f.write(t, afterMissing, afterOversize, good[3], good[4])

	var delivered sync.Map
	f.consume(t, func(_ context.Context, env *eventsv1.Envelope) error {
		delivered.Store(env.GetEventId(), true)
		return nil
	})
	const maxAttempts = 3
	pub := newRecordingPublisher(f.producer)
	relay := NewRelay(f.db, pub, RelayConfig{PollInterval: 5 * time.Millisecond, MaxAttempts: maxAttempts,
		RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond})
	stop := runRelay(t, relay)

	for _, m := range []bus.Message{toMissing, oversize} {
		waitFor(t, "row "+eventIDOf(m)+" parked", func() bool { _, parked, _, _ := f.rowState(t, eventIDOf(m)); return parked })
		attempts, _, sent, lastError := f.rowState(t, eventIDOf(m))
		if attempts != maxAttempts || sent || lastError == "" {
			t.Errorf("parked row %s: attempts=%d sent=%v last_error=%q, want %d attempts, unsent, a reason", eventIDOf(m), attempts, sent, lastError, maxAttempts)
		}
	}
	for _, m := range append(good, afterMissing, afterOversize) {
		waitFor(t, "good row "+eventIDOf(m)+" delivered", func() bool { _, ok := delivered.Load(eventIDOf(m)); return ok })
	}
	if failed, seen := pub.failedCallsBefore(eventIDOf(oversize), eventIDOf(afterOversize)); !seen || failed != maxAttempts {
		t.Errorf("the same key's later row went out after %d failed attempts of the poison row (published: %v), want after all %d",
			failed, seen, maxAttempts)
	}
	if n, err := relay.Parked(ctx); err != nil || n != 2 {
		t.Fatalf("parked rows = %d (%v), want 2", n, err)
	}
	if n, err := relay.Backlog(ctx); err != nil || n != 0 {
		t.Fatalf("backlog = %d (%v), want 0 (parked rows are not backlog)", n, err)
	}
	if s := relay.Status(); s.State != StateActive {
		t.Errorf("status %+v, want active: poison rows do not make the relay fail", s)
	}
	listed, err := relay.ListOutbox(ctx, true, 10)
	if err != nil || len(listed) != 2 || listed[0].EventID != eventIDOf(toMissing) || listed[1].Bytes != len(oversize.Value) {
		t.Fatalf("parked list %+v (%v), want the missing-topic row then the oversize one", listed, err)
	}

	// The operator creates the topic and retries the row: it is published.
	if err := bus.EnsureTopics(ctx, testenv.Brokers(), bus.TopicSpec{Name: missingTopic, Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	// The producer caches topic metadata briefly: wait until it sees the topic.
	waitFor(t, "the producer to see the new topic", func() bool {
		probe := f.message(t, events.NewID(), "probe")
		probe.Topic = missingTopic
		return f.producer.Publish(ctx, probe) == nil
	})
	if _, err := relay.RetryParked(ctx, "not-a-number"); !errors.Is(err, ErrBadID) {
		t.Errorf("retry of a bad id: %v, want ErrBadID", err)
	}
	if _, err := relay.RetryParked(ctx, "999999999"); !errors.Is(err, ErrNotParked) {
		t.Errorf("retry of an unknown id: %v, want ErrNotParked", err)
	}
	if n, err := relay.RetryParked(ctx, listed[0].ID); err != nil || n != 1 {
		t.Fatalf("retry %s: %d rows, %v", listed[0].ID, n, err)
	}
	waitFor(t, "the retried row to be published", func() bool { _, _, sent, _ := f.rowState(t, eventIDOf(toMissing)); return sent })
	if n, err := relay.Parked(ctx); err != nil || n != 1 {
		t.Fatalf("parked rows after the retry = %d (%v), want 1 (the oversize row)", n, err)
	}
	stop()
}

// The lock's connection is killed from another connection: the relay takes
// the lock again on a new connection and publishes rows written afterwards;
// Run does not return.
func TestRelayRetakesItsLockAfterItsConnectionIsKilled(t *testing.T) {
	f := newFixture(t, 1)
	lock := testenv.UniqueName("relay-")
	relay := NewRelay(f.db, f.producer, RelayConfig{PollInterval: 5 * time.Millisecond, LockName: lock, LockCheckInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	var database string
	if err := f.db.QueryRow("SELECT DATABASE()").Scan(&database); err != nil {
		t.Fatal(err)
	}
	holder := func() int64 {
		var id sql.NullInt64
		if err := f.db.QueryRow("SELECT IS_USED_LOCK(?)", scopedLockName(lock, database)).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id.Int64
	}
	waitFor(t, "relay to take the lock", func() bool { return holder() != 0 })
	var deliveries atomic.Int32
	f.consume(t, func(context.Context, *eventsv1.Envelope) error { deliveries.Add(1); return nil })
	order := events.NewID()
	f.write(t, f.message(t, order, "before-kill"))
	waitFor(t, "the row written before the kill", func() bool { return deliveries.Load() >= 1 })

	first := holder()
	if _, err := f.db.Exec(fmt.Sprintf("KILL %d", first)); err != nil {
		t.Fatalf("kill the lock's connection %d: %v", first, err)
	}
	for i := 0; i < 10; i++ {
		f.write(t, f.message(t, order, fmt.Sprintf("after-kill-%d", i)))
	}
	waitFor(t, "the rows written after the kill", func() bool { return deliveries.Load() >= 11 })
	waitFor(t, "the lock held by a new connection", func() bool { id := holder(); return id != 0 && id != first })
	select {
	case err := <-done:
		t.Fatalf("Run returned after its lock connection was killed: %v", err)
	default:
	}
	waitFor(t, "status active", func() bool { return relay.Status().State == StateActive })
}

// Two relays on one database: publish calls never overlap, only one relay
// publishes, and every row goes out once.
func TestTwoRelaysOnOneDatabaseNeverPublishAtTheSameTime(t *testing.T) {
	f := newFixture(t, 3)
	lock := testenv.UniqueName("relay-")
	cfg := RelayConfig{PollInterval: 2 * time.Millisecond, LockName: lock, BatchSize: 5}
	pubA := newRecordingPublisher(f.producer)
	pubB := pubA.sharing(f.producer)
	runRelay(t, NewRelay(f.db, pubA, cfg))
	runRelay(t, NewRelay(f.db, pubB, cfg))

	var deliveries atomic.Int32
	f.consume(t, func(context.Context, *eventsv1.Envelope) error { deliveries.Add(1); return nil })
	for i := 0; i < 60; i++ {
		f.write(t, f.message(t, events.NewID(), fmt.Sprintf("two-%d", i)))
	}
	waitFor(t, "60 deliveries", func() bool { return deliveries.Load() >= 60 })
	time.Sleep(200 * time.Millisecond) // let any duplicate arrive
	if got := deliveries.Load(); got != 60 {
		t.Errorf("%d deliveries, want 60", got)
	}
	if m := pubA.maxSeen.Load(); m != 1 {
		t.Errorf("at most %d publish calls in flight across both relays, want 1", m)
	}
	if a, b := pubA.calls.Load(), pubB.calls.Load(); (a == 0) == (b == 0) {
		t.Errorf("publish calls: relay A %d, relay B %d; want exactly one relay publishing", a, b)
	}
}

// The relay's store fails under it (its table renamed away, as close to a
// store outage as a shared server allows): Status turns failing, Run keeps
// retrying, and once the table is back the relay is active and publishes.
func TestRelayRidesOutAStoreFailure(t *testing.T) {
	f := newFixture(t, 1)
	relay := NewRelay(f.db, f.producer, RelayConfig{PollInterval: 5 * time.Millisecond, LockName: testenv.UniqueName("relay-")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "status active", func() bool { return relay.Status().State == StateActive })

	if _, err := f.db.Exec("RENAME TABLE outbox TO outbox_away"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "status failing", func() bool { return relay.Status().State == StateFailing })
	if err := relay.Status().Err(); err == nil || !strings.Contains(err.Error(), "outbox") {
		t.Errorf("Status().Err() = %v, want the store error", err)
	}
	if _, err := f.db.Exec("RENAME TABLE outbox_away TO outbox"); err != nil {
		t.Fatal(err)
	}
	var deliveries atomic.Int32
	f.consume(t, func(context.Context, *eventsv1.Envelope) error { deliveries.Add(1); return nil })
	f.write(t, f.message(t, events.NewID(), "after-outage"))
	waitFor(t, "the row written after the outage", func() bool { return deliveries.Load() >= 1 })
	waitFor(t, "status active again", func() bool { return relay.Status().Err() == nil })
	select {
	case err := <-done:
		t.Fatalf("Run returned during the store failure: %v", err)
	default:
	}
}
