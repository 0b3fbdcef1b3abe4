package app_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/services/order/internal/adapters"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

// wait bounds every wait in these tests; none asserts on timing.
const wait = 2 * time.Minute

// never is a watch poll interval that does not fire within a test: what a
// watcher sees then was pushed.
const never = time.Hour

// readCountingRepo counts the reads watchers make.
type readCountingRepo struct {
	app.Repository
	gets, versionQueries atomic.Int64
	versionIDs           atomic.Int64 // ids asked for, over all version queries
}

func (r *readCountingRepo) Get(ctx context.Context, id string) (*order.Order, error) {
	r.gets.Add(1)
	return r.Repository.Get(ctx, id)
}

func (r *readCountingRepo) VersionsOf(ctx context.Context, ids []string) (map[string]int64, error) {
	r.versionQueries.Add(1)
	r.versionIDs.Add(int64(len(ids)))
	return r.Repository.VersionsOf(ctx, ids)
}

// replica is one order service's use cases on a shared database, wired as
// Run wires them: its commits are published to its own watchers.
type replica struct {
	app      app.Application
	watchers *app.Watchers
	repo     *readCountingRepo
	clock    *clock.Manual
}

func migratedDB(t *testing.T) *sql.DB {
	t.Helper()
	db, _ := testenv.MySQLDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := adapters.Migrate(ctx, db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// newReplica wires a replica; with poll < never its watch poller runs
// (as Run runs it) until the test ends.
func newReplica(t *testing.T, db *sql.DB, poll time.Duration) *replica {
	// Bounds far above what these tests open (20 streams of one order):
	// stream_limits_test.go tests the bounds.
	limits, err := app.NewStreamLimits(1000, 1000)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{watchers: app.NewWatchers(limits), clock: clock.NewManual(time.Now())}
	r.repo = &readCountingRepo{Repository: adapters.NewOrderMySQLRepository(db, "order", r.clock.Now)}
	r.app = app.New(app.Deps{Repo: r.repo, Encode: ports.Encode, Now: r.clock.Now, Changed: r.watchers.Publish},
		30*time.Second, r.watchers, nil)
	if poll < never {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- r.watchers.RunPolling(ctx, r.repo, poll, func(err error) { t.Errorf("watch poll: %v", err) })
		}()
		t.Cleanup(func() {
			cancel()
			<-done
		})
	}
	return r
}

func (r *replica) create(t *testing.T) *order.Order {
	t.Helper()
	o, err := r.app.CreateOrder.Handle(context.Background(), order.Draft{CustomerID: events.NewID(), Currency: "EUR", PaymentToken: "tok_visa",
		Lines:           []order.Line{{SKU: "BOOK-1", Quantity: 2, UnitPriceMinor: 1250}},
		ShippingAddress: order.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", CountryCode: "DE"}})
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	return o
}

func (r *replica) record(t *testing.T, orderID string, typ order.EventType) string {
	t.Helper()
	id := events.NewID()
	if err := r.app.RecordSagaEvent.Handle(context.Background(), app.SagaEvent{OrderID: orderID, EventID: id, Type: typ,
		OccurredAt: r.clock.Now(), Detail: string(typ)}); err != nil {
		t.Fatalf("record %s: %v", typ, err)
	}
	return id
}

// stream is a running WatchOrder: what it sent (closed when it ended),
// and how it ended.
type stream struct {
	sent  chan *order.Order
	ended chan error
}

// watch runs WatchOrder; send, when not nil, is called before each
// snapshot is handed to the test.
func watch(ctx context.Context, r *replica, orderID string, send func(*order.Order) error) *stream {
	s := &stream{sent: make(chan *order.Order, 64), ended: make(chan error, 1)}
	go func() {
		err := r.app.WatchOrder.Handle(ctx, orderID, func(o *order.Order) error {
			if send != nil {
				if err := send(o); err != nil {
					return err
				}
			}
			s.sent <- o
			return nil
		})
		s.ended <- err
		close(s.sent)
	}()
	return s
}

func (s *stream) next(t *testing.T) *order.Order {
	t.Helper()
	select {
	case o, open := <-s.sent:
		if !open {
			t.Fatalf("stream ended (%v), want another snapshot", <-s.ended)
		}
		return o
	case <-time.After(wait):
		t.Fatalf("no snapshot within %s", wait)
	}
	return nil
}

// end waits for the stream to end, with nothing more sent.
func (s *stream) end(t *testing.T) error {
	t.Helper()
	select {
	case o, open := <-s.sent:
		if open {
			t.Fatalf("stream sent v%d %s, want its end", o.Version, o.Status)
		}
		return <-s.ended
	case <-time.After(wait):
		t.Fatalf("stream did not end within %s", wait)
	}
	return nil
}

func lastStep(o *order.Order) order.Step { return o.Steps[len(o.Steps)-1] }

// With no watch poller running, a watcher still sees every change of
// a saga — each step, then the terminal state — as the committing use case
// wrote it, equal to what the store holds, having read the store once.
func TestWatchOrderGetsEveryChangePushed(t *testing.T) {
	db := migratedDB(t)
	r := newReplica(t, db, never)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	t.Run("a completed saga", func(t *testing.T) {
		o := r.create(t)
		s := watch(ctx, r, o.ID, nil)
		if first := s.next(t); first.Status != order.StatusPending || first.Version != 1 {
			t.Fatalf("first snapshot %s v%d, want PENDING v1", first.Status, first.Version)
		}
		gets := r.repo.gets.Load()
		var got *order.Order
		for i, typ := range []order.EventType{"STOCK_RESERVED", "PAYMENT_PROCESSED", "INVENTORY_UPDATED", "SHIPMENT_CREATED"} {
			eventID := r.record(t, o.ID, typ)
			got = s.next(t)
			if got.Version != int64(i+2) || !got.HasStep(eventID) {
				t.Errorf("after %s: snapshot v%d with steps %v, want v%d with the event", typ, got.Version, got.Steps, i+2)
			}
		}
		if got.Status != order.StatusCompleted || lastStep(got).EventType != order.EventOrderCompleted {
			t.Errorf("last snapshot %s ending with %s, want COMPLETED with ORDER_COMPLETED", got.Status, lastStep(got).EventType)
		}
		if err := s.end(t); err != nil {
			t.Errorf("stream ended with %v after the terminal snapshot, want nil", err)
		}
		if n := r.repo.gets.Load() - gets; n != 0 {
			t.Errorf("the watcher read the order %d times after its first read, want 0", n)
		}
		if n := r.repo.versionQueries.Load(); n != 0 {
			t.Errorf("%d version queries, want none", n)
		}
		stored, err := r.repo.Get(ctx, o.ID)
		if err != nil || !reflect.DeepEqual(stored, got) {
			t.Errorf("pushed\n%+v\nstored (%v)\n%+v", got, err, stored)
		}
	})

	t.Run("a customer's cancel", func(t *testing.T) {
		o := r.create(t)
		s := watch(ctx, r, o.ID, nil)
		s.next(t)
		if _, err := r.app.CancelOrder.Handle(ctx, o.ID, "changed my mind", "", ""); err != nil {
			t.Fatal(err)
		}
		got := s.next(t)
		if got.Status != order.StatusCancelled || got.CancelReason != order.ReasonCustomerRequested || got.CancelDetail != "changed my mind" {
			t.Errorf("pushed %s/%s %q, want CANCELLED/CUSTOMER_REQUESTED", got.Status, got.CancelReason, got.CancelDetail)
		}
		if err := s.end(t); err != nil {
			t.Errorf("stream ended with %v, want nil", err)
		}
	})

	t.Run("the deadline sweep", func(t *testing.T) {
		o := r.create(t)
		s := watch(ctx, r, o.ID, nil)
		s.next(t)
		r.clock.Advance(31 * time.Second)
		if n, err := r.app.ExpireOrders.Handle(ctx); err != nil || n < 1 {
			t.Fatalf("sweep cancelled %d, %v", n, err)
		}
		got := s.next(t)
		if got.Status != order.StatusCancelled || got.CancelReason != order.ReasonTimeout || lastStep(got).EventType != order.EventOrderCancelled {
			t.Errorf("pushed %s/%s, want CANCELLED/TIMEOUT with its step", got.Status, got.CancelReason)
		}
		if err := s.end(t); err != nil {
			t.Errorf("stream ended with %v, want nil", err)
		}
	})
}

// A watcher that does not take its snapshots holds up no commit: the saga
// runs to its end while the watcher's send is stuck, and once unstuck the
// watcher skips to the newest state.
func TestSlowWatcherDoesNotHoldUpCommits(t *testing.T) {
	db := migratedDB(t)
	r := newReplica(t, db, never)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	o := r.create(t)

	stuck, unstick := make(chan struct{}), make(chan struct{})
	var sends atomic.Int32
	s := watch(ctx, r, o.ID, func(*order.Order) error {
		if sends.Add(1) == 2 { // the first pushed snapshot
			close(stuck)
			<-unstick
		}
		return nil
	})
	s.next(t)
	r.record(t, o.ID, "STOCK_RESERVED")
	select {
	case <-stuck:
	case <-time.After(wait):
		t.Fatal("the first change was not pushed")
	}
	// Three more commits, the last one terminal, while the send is stuck.
	for _, typ := range []order.EventType{"PAYMENT_PROCESSED", "INVENTORY_UPDATED", "SHIPMENT_CREATED"} {
		r.record(t, o.ID, typ)
	}
	if len(s.ended) > 0 {
		t.Fatal("the stream ended while its send was stuck")
	}
	close(unstick)
	if got := s.next(t); got.Version != 2 {
		t.Errorf("the stuck send had v%d, want 2", got.Version)
	}
	if got := s.next(t); got.Version != 5 || got.Status != order.StatusCompleted {
		t.Errorf("after the stuck send: v%d %s, want the newest (v5 COMPLETED), v3 and v4 skipped", got.Version, got.Status)
	}
	if err := s.end(t); err != nil {
		t.Errorf("stream ended with %v, want nil", err)
	}
}

// Changes another replica commits are not pushed here: the replica's one
// poller finds each and reads the order once per change, however many
// streams watch it; every stream gets every change.
func TestWatchOrderFindsAnotherReplicasChangesByPolling(t *testing.T) {
	db := migratedDB(t)
	watching := newReplica(t, db, 20*time.Millisecond)
	other := newReplica(t, db, never)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	o := other.create(t)

	const streams = 8
	var ss []*stream
	for range streams {
		s := watch(ctx, watching, o.ID, nil)
		s.next(t)
		ss = append(ss, s)
	}
	for i, typ := range []order.EventType{"STOCK_RESERVED", "PAYMENT_PROCESSED", "INVENTORY_UPDATED", "SHIPMENT_CREATED"} {
		eventID := other.record(t, o.ID, typ)
		for _, s := range ss {
			if got := s.next(t); got.Version != int64(i+2) || !got.HasStep(eventID) {
				t.Errorf("after %s: v%d with steps %v, want v%d with the event", typ, got.Version, got.Steps, i+2)
			}
		}
	}
	for _, s := range ss {
		if err := s.end(t); err != nil {
			t.Errorf("stream ended with %v, want nil", err)
		}
	}
	if gets := watching.repo.gets.Load(); gets != streams+4 {
		t.Errorf("%d whole-order reads; want %d (each stream's first, then one per change for all streams)", gets, streams+4)
	}
}

// One poll round costs one version query for all watched orders, whatever
// the number of streams on each, and reads only the orders that moved.
func TestOnePollRoundIsOneQueryForAllStreams(t *testing.T) {
	db := migratedDB(t)
	watching := newReplica(t, db, never) // polled by hand below
	other := newReplica(t, db, never)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	const orders, perOrder = 5, 20
	var moved []*stream
	var ids []string
	for i := range orders {
		o := other.create(t)
		ids = append(ids, o.ID)
		for range perOrder {
			s := watch(ctx, watching, o.ID, nil)
			s.next(t)
			if i < 2 {
				moved = append(moved, s)
			}
		}
	}
	if n, err := watching.watchers.Poll(ctx, watching.repo); n != 0 || err != nil {
		t.Fatalf("poll with nothing changed published %d (%v), want 0", n, err)
	}
	other.record(t, ids[0], "STOCK_RESERVED")
	other.record(t, ids[1], "OUT_OF_STOCK")
	queries, asked, gets := watching.repo.versionQueries.Load(), watching.repo.versionIDs.Load(), watching.repo.gets.Load()
	if n, err := watching.watchers.Poll(ctx, watching.repo); n != 2 || err != nil {
		t.Fatalf("poll published %d orders (%v), want the 2 that moved", n, err)
	}
	if q, a, g := watching.repo.versionQueries.Load()-queries, watching.repo.versionIDs.Load()-asked, watching.repo.gets.Load()-gets; q != 1 || a != orders || g != 2 {
		t.Errorf("one round of %d streams on %d orders: %d version queries for %d ids, %d order reads; want 1 for %d, 2",
			orders*perOrder, orders, q, a, g, orders)
	}
	for _, s := range moved {
		if got := s.next(t); got.Version != 2 {
			t.Errorf("stream got v%d, want v2", got.Version)
		}
	}
}

// However a stream ends — its order ends, its client goes, its send fails —
// its watch ends with it.
func TestEndedStreamsLeaveNoWatch(t *testing.T) {
	db := migratedDB(t)
	r := newReplica(t, db, never)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	const perWay = 5
	sendFailed := errors.New("client gone")

	completing, failing, leaving := r.create(t), r.create(t), r.create(t)
	var streams []*stream
	var clientGone []context.CancelFunc
	for range perWay {
		streams = append(streams, watch(ctx, r, completing.ID, nil))
		var sends atomic.Int32
		streams = append(streams, watch(ctx, r, failing.ID, func(*order.Order) error {
			if sends.Add(1) > 1 {
				return sendFailed
			}
			return nil
		}))
		clientCtx, leave := context.WithCancel(ctx)
		clientGone = append(clientGone, leave)
		streams = append(streams, watch(clientCtx, r, leaving.ID, nil))
	}
	for _, s := range streams {
		s.next(t) // every watch is open
	}
	if n := r.watchers.Open(); n != 3*perWay {
		t.Fatalf("%d watches open, want %d", n, 3*perWay)
	}
	r.record(t, completing.ID, "SHIPMENT_CREATED")
	r.record(t, failing.ID, "STOCK_RESERVED")
	for _, leave := range clientGone {
		leave()
	}
	ends := map[string]int{}
	for _, s := range streams {
		var err error
		select {
		case err = <-s.ended: // what it sent last does not matter here
		case <-time.After(wait):
			t.Fatalf("a stream did not end within %s", wait)
		}
		ends[fmt.Sprint(err)]++
	}
	want := map[string]int{"<nil>": perWay, sendFailed.Error(): perWay, context.Canceled.Error(): perWay}
	if !reflect.DeepEqual(ends, want) {
		t.Errorf("streams ended %v, want %v", ends, want)
	}
	if n := r.watchers.Open(); n != 0 {
		t.Errorf("%d watches open after every stream ended, want 0", n)
	}
}
