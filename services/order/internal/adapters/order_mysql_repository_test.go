package adapters_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/inbox"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/adapters"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

const consumer = "order"

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// newRepo gives each test a fresh, migrated database on the real MariaDB.
func newRepo(t testing.TB) (*adapters.OrderMySQLRepository, *sql.DB) {
	t.Helper()
	db, _ := testenv.MySQLDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := adapters.Migrate(ctx, db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return adapters.NewOrderMySQLRepository(db, consumer, func() time.Time { return t0 }), db
}

func newOrder(t *testing.T, id, customer string, created time.Time) *order.Order {
	t.Helper()
	o, err := order.New(order.Draft{
		ID: id, CustomerID: customer, RequestID: testenv.IDFor("request " + id),
		Lines:    []order.Line{{SKU: "BOOK-1", Quantity: 2, UnitPriceMinor: 1250}, {SKU: "PEN-2", Quantity: 1, UnitPriceMinor: 99}},
		Currency: "EUR", PaymentToken: "tok_visa",
		ShippingAddress: order.Address{Name: "Ada", Line1: "Main St 1", Line2: "3rd floor", City: "Berlin", PostalCode: "10115", CountryCode: "DE"},
	}, created, 30*time.Second)
	if err != nil {
		t.Fatalf("order.New: %v", err)
	}
	return o
}

// envelope is an event of the order to store in the outbox with a change.
func envelope(t *testing.T, o *order.Order) *eventsv1.Envelope {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: o.ID, CustomerID: o.CustomerID, Producer: "order",
		CausationID: events.NewID(), OccurredAt: t0}, &eventsv1.OrderCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// create stores o with its ORDER_CREATED step and one outbox event.
func create(t *testing.T, repo *adapters.OrderMySQLRepository, o *order.Order) *eventsv1.Envelope {
	t.Helper()
	env := envelope(t, o)
	o.RecordEmitted(order.Step{EventType: order.EventOrderCreated, EventID: env.GetEventId(), OccurredAt: o.CreatedAt, Detail: "placed"}, o.CreatedAt)
	if _, created, err := repo.Create(context.Background(), o, []*eventsv1.Envelope{env}); err != nil || !created {
		t.Fatalf("Create = created %v, %v", created, err)
	}
	return env
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestCreateThenGetReturnsTheSameOrder(t *testing.T) {
	repo, db := newRepo(t)
	o := newOrder(t, testenv.IDFor("o1"), testenv.IDFor("c1"), t0)
	env := create(t, repo, o)

	got, err := repo.Get(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, o) {
		t.Errorf("Get =\n%+v\nwant\n%+v", got, o)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM outbox WHERE event_id = ? AND msg_key = ?", env.GetEventId(), o.ID); n != 1 {
		t.Errorf("%d outbox rows for the order's event, want 1", n)
	}
	if _, err := repo.Get(context.Background(), testenv.IDFor("nobody")); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("Get of an unknown id = %v, want ErrNotFound", err)
	}
}

// Retried CreateOrder calls race on one id: one row, one event, every caller
// gets the first order.
func TestConcurrentCreatesOfOneIDStoreOneOrder(t *testing.T) {
	repo, db := newRepo(t)
	id := testenv.IDFor("retried")
	const callers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		totals  = map[int64]int{}
	)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := newOrder(t, id, testenv.IDFor("c1"), t0)
			o.Lines[0].Quantity = int32(i + 1) // each caller asks for something else
			o.TotalMinor = int64(i + 1)
			env := envelope(t, o)
			stored, ok, err := repo.Create(context.Background(), o, []*eventsv1.Envelope{env})
			if err != nil {
				t.Errorf("Create: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if ok {
				created++
			}
			totals[stored.TotalMinor]++
		}()
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("%d callers created the order, want 1", created)
	}
	if len(totals) != 1 {
		t.Errorf("callers got different orders back (totals %v), want the first for all", totals)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM outbox WHERE msg_key = ?", id); n != 1 {
		t.Errorf("%d outbox rows, want 1", n)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM order_lines WHERE order_id = ?", id); n != 2 {
		t.Errorf("%d order lines, want 2", n)
	}
}

func observe(eventID string, typ order.EventType) app.ChangeFunc {
	return func(o *order.Order) ([]*eventsv1.Envelope, error) {
		o.Observe(order.Step{EventType: typ, EventID: eventID, OccurredAt: t0, Detail: string(typ)}, t0)
		return nil, nil
	}
}

// Copies of one event delivered at once (a rebalance, a redelivery) apply once.
func TestConcurrentCopiesOfOneEventApplyOnce(t *testing.T) {
	repo, db := newRepo(t)
	o := newOrder(t, testenv.IDFor("o1"), testenv.IDFor("c1"), t0)
	create(t, repo, o)
	eventID := testenv.IDFor("stock reserved")
	var (
		wg      sync.WaitGroup
		applied sync.Map
	)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := repo.Update(context.Background(), o.ID, eventID, observe(eventID, "STOCK_RESERVED"))
			if err != nil {
				t.Errorf("Update: %v", err)
			}
			applied.Store(i, ok)
		}()
	}
	wg.Wait()
	n := 0
	applied.Range(func(_, v any) bool {
		if v.(bool) {
			n++
		}
		return true
	})
	if n != 1 {
		t.Errorf("%d copies applied, want 1", n)
	}
	if got := count(t, db, "SELECT COUNT(*) FROM order_steps WHERE order_id = ? AND event_id = ?", o.ID, eventID); got != 1 {
		t.Errorf("%d steps for the event, want 1", got)
	}
	if ok, err := inbox.Processed(context.Background(), db, consumer, eventID); err != nil || !ok {
		t.Errorf("inbox: processed %v, %v", ok, err)
	}
}

// Different events of one order at once: the row lock serializes them, none is lost.
func TestConcurrentUpdatesOfOneOrderLoseNothing(t *testing.T) {
	repo, _ := newRepo(t)
	o := newOrder(t, testenv.IDFor("o1"), testenv.IDFor("c1"), t0)
	create(t, repo, o)
	const updates = 20
	var wg sync.WaitGroup
	for i := range updates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			eventID := testenv.IDFor(fmt.Sprintf("event %d", i))
			if _, ok, err := repo.Update(context.Background(), o.ID, eventID, observe(eventID, "PAYMENT_PROCESSED")); err != nil || !ok {
				t.Errorf("Update %d: applied %v, %v", i, ok, err)
			}
		}()
	}
	wg.Wait()
	got, err := repo.Get(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Steps) != 1+updates {
		t.Errorf("%d steps, want %d (ORDER_CREATED + %d events)", len(got.Steps), 1+updates, updates)
	}
	if got.Version != 1+updates {
		t.Errorf("version %d, want %d", got.Version, 1+updates)
	}
}

// A transition stores status, reason, steps and its events together.
func TestUpdateStoresTheTransitionWithItsEvents(t *testing.T) {
	repo, db := newRepo(t)
	o := newOrder(t, testenv.IDFor("o1"), testenv.IDFor("c1"), t0)
	create(t, repo, o)
	var env *eventsv1.Envelope
	later := t0.Add(time.Second)
	updated, ok, err := repo.Update(context.Background(), o.ID, "", func(o *order.Order) ([]*eventsv1.Envelope, error) {
		if _, err := o.CancelByCustomer("changed my mind", later); err != nil {
			return nil, err
		}
		env = envelope(t, o)
		o.RecordEmitted(order.Step{EventType: order.EventOrderCancelled, EventID: env.GetEventId(), OccurredAt: later}, later)
		return []*eventsv1.Envelope{env}, nil
	})
	if err != nil || !ok {
		t.Fatalf("Update: applied %v, %v", ok, err)
	}
	got, err := repo.Get(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, updated) {
		t.Errorf("Get =\n%+v\nwant what Update returned\n%+v", got, updated)
	}
	if got.Status != order.StatusCancelled || got.CancelReason != order.ReasonCustomerRequested ||
		got.CancelDetail != "changed my mind" || !got.UpdatedAt.Equal(later) || got.Version != 2 {
		t.Errorf("stored %+v", got)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM outbox WHERE event_id = ?", env.GetEventId()); n != 1 {
		t.Errorf("%d outbox rows for ORDER_CANCELLED, want 1", n)
	}
	// What the watch poller reads: unknown ids are left out.
	nobody := testenv.IDFor("nobody")
	if v, err := repo.VersionsOf(context.Background(), []string{o.ID, nobody}); err != nil || !reflect.DeepEqual(v, map[string]int64{o.ID: 2}) {
		t.Errorf("VersionsOf = %v, %v; want only %s at 2", v, err, o.ID)
	}
}

func TestUpdateWithoutChangeWritesNothing(t *testing.T) {
	repo, _ := newRepo(t)
	o := newOrder(t, testenv.IDFor("o1"), testenv.IDFor("c1"), t0)
	create(t, repo, o)
	got, ok, err := repo.Update(context.Background(), o.ID, "", func(*order.Order) ([]*eventsv1.Envelope, error) { return nil, nil })
	if err != nil || !ok || got.Version != 1 {
		t.Fatalf("Update: %+v, applied %v, %v", got, ok, err)
	}
	stored, _ := repo.Get(context.Background(), o.ID)
	if stored.Version != 1 {
		t.Errorf("version %d after a no-op, want 1", stored.Version)
	}
}

// A failed change rolls back everything, the inbox claim included, so a
// retry of the event is applied.
func TestFailedUpdateRollsBackItsClaim(t *testing.T) {
	repo, db := newRepo(t)
	o := newOrder(t, testenv.IDFor("o1"), testenv.IDFor("c1"), t0)
	create(t, repo, o)
	eventID := testenv.IDFor("payment failed")
	boom := errors.New("boom")
	_, _, err := repo.Update(context.Background(), o.ID, eventID, func(o *order.Order) ([]*eventsv1.Envelope, error) {
		o.Observe(order.Step{EventType: order.EventPaymentFailed, EventID: eventID, OccurredAt: t0}, t0)
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the change's error", err)
	}
	if ok, _ := inbox.Processed(context.Background(), db, consumer, eventID); ok {
		t.Error("the event is marked processed although its change failed")
	}
	stored, _ := repo.Get(context.Background(), o.ID)
	if stored.Status != order.StatusPending || len(stored.Steps) != 1 {
		t.Errorf("stored %s with %d steps, want PENDING with 1", stored.Status, len(stored.Steps))
	}
	if _, ok, err := repo.Update(context.Background(), o.ID, eventID, observe(eventID, order.EventPaymentFailed)); err != nil || !ok {
		t.Errorf("retry: applied %v, %v", ok, err)
	}
}

func TestUpdateOfAnUnknownOrderIsNotFoundAndClaimsNothing(t *testing.T) {
	repo, db := newRepo(t)
	eventID := testenv.IDFor("stray")
	_, _, err := repo.Update(context.Background(), testenv.IDFor("unknown"), eventID, observe(eventID, "STOCK_RESERVED"))
	if !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("Update = %v, want ErrNotFound", err)
	}
	if ok, _ := inbox.Processed(context.Background(), db, consumer, eventID); ok {
		t.Error("an event for an unknown order is marked processed")
	}
}

func TestListOfACustomerPagesNewestFirst(t *testing.T) {
	repo, _ := newRepo(t)
	customer := testenv.IDFor("c1")
	// Created at 0s, 1s, 1s, 2s, 3s: two share a timestamp, the id breaks the tie.
	offsets := []time.Duration{0, time.Second, time.Second, 2 * time.Second, 3 * time.Second}
	var want []string
	for i, off := range offsets {
		o := newOrder(t, testenv.IDFor(fmt.Sprintf("o%d", i)), customer, t0.Add(off))
		create(t, repo, o)
		want = append(want, o.ID)
	}
	create(t, repo, newOrder(t, testenv.IDFor("other's"), testenv.IDFor("c2"), t0.Add(time.Hour)))
	if want[1] > want[2] { // oldest first for now: the smaller id of the tie first
		want[1], want[2] = want[2], want[1]
	}
	var got []string
	var after *app.Cursor
	for page := 0; ; page++ {
		if page > len(offsets) {
			t.Fatal("paging does not end")
		}
		orders, err := repo.List(context.Background(), app.ListFilter{CustomerID: customer}, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(orders) == 0 {
			break
		}
		for _, o := range orders {
			if len(o.Lines) != 2 || len(o.Steps) != 1 {
				t.Errorf("order %s listed with %d lines, %d steps", o.ID, len(o.Lines), len(o.Steps))
			}
			got = append(got, o.ID)
		}
		last := orders[len(orders)-1]
		after = &app.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
		want[i], want[j] = want[j], want[i]
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("listed %v\nwant     %v", got, want)
	}
}

func TestPendingPastDeadline(t *testing.T) {
	repo, _ := newRepo(t)
	customer := testenv.IDFor("c1")
	due := newOrder(t, testenv.IDFor("due"), customer, t0)
	create(t, repo, due)
	create(t, repo, newOrder(t, testenv.IDFor("not due"), customer, t0.Add(time.Minute)))
	ended := newOrder(t, testenv.IDFor("ended"), customer, t0)
	create(t, repo, ended)
	if _, _, err := repo.Update(context.Background(), ended.ID, "", func(o *order.Order) ([]*eventsv1.Envelope, error) {
		_, err := o.CancelByCustomer("", t0)
		return nil, err
	}); err != nil {
		t.Fatal(err)
	}
	ids, err := repo.PendingPastDeadline(context.Background(), due.Deadline, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []string{due.ID}) {
		t.Errorf("due ids %v, want only %s", ids, due.ID)
	}
}
