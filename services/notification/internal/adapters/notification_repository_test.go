package adapters_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters/cassandratest"
	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
	"github.com/sagasuite/sagasuite/services/notification/migrations"
)

// storeImpl is one app.Store implementation under the contract: the real
// Cassandra store and the in-memory stand-in of the dev stack pass the same tests.
type storeImpl struct {
	name string
	open func(t *testing.T) app.Store
}

func storeImpls() []storeImpl {
	return []storeImpl{
		{"cassandra", func(t *testing.T) app.Store { return openCassandra(t, cassandratest.Keyspace(t)) }},
		{"memory", func(*testing.T) app.Store { return adapters.NewNotificationMemoryRepository() }},
	}
}

func cassandraConfig(keyspace string) adapters.CassandraConfig {
	return adapters.CassandraConfig{
		Hosts: cassandratest.Hosts(), Keyspace: keyspace,
		Replication: "{'class':'SimpleStrategy','replication_factor':1}",
		// The service's default: on replication factor 1 it is the one replica.
		Consistency: gocql.LocalQuorum,
		Timeout:     30 * time.Second,
	}
}

func openCassandra(t testing.TB, keyspace string) *adapters.NotificationCassandraRepository {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	repo, err := adapters.OpenCassandra(ctx, cassandraConfig(keyspace), migrations.FS)
	if err != nil {
		t.Fatalf("open Cassandra store: %v", err)
	}
	t.Cleanup(repo.Close) // runs before the keyspace is dropped
	return repo
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var base = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

func sagaEvent(orderID, name string, at time.Time, t notification.EventType) app.SagaEvent {
	return app.SagaEvent{
		OrderID: orderID, OccurredAt: at, EventID: testenv.IDFor(orderID + "/" + name), Type: t,
		Producer: "order", CausationID: testenv.IDFor("cause/" + name), CustomerID: testenv.IDFor("customer"),
		Envelope: []byte("envelope of " + name),
	}
}

func note(customerID, name string, at time.Time) notification.Notification {
	return notification.Notification{
		ID: notification.IDFor(testenv.IDFor(name)), CustomerID: customerID, OrderID: testenv.IDFor("order/" + name),
		Channel: notification.ChannelEmail, Template: "order_completed", Subject: "subject " + name, Body: "body " + name,
		EventType: notification.OrderCompleted, EventID: testenv.IDFor(name), SendTime: at,
	}
}

func TestStoreContract(t *testing.T) {
	for _, impl := range storeImpls() {
		t.Run(impl.name, func(t *testing.T) {
			t.Run("saga log is per order, oldest first, as recorded", func(t *testing.T) { testSagaLog(t, impl.open(t)) })
			t.Run("a saga event recorded again, even concurrently, is one entry", func(t *testing.T) { testSagaEventOnce(t, impl.open(t)) })
			t.Run("an event's first time is pinned", func(t *testing.T) { testPinOccurredAt(t, impl.open(t)) })
			t.Run("copies pinned at once by two replicas agree on one time", func(t *testing.T) { testPinOccurredAtConcurrently(t, impl.open(t)) })
			t.Run("notifications are per customer, newest first, paged", func(t *testing.T) { testNotificationPages(t, impl.open(t)) })
			t.Run("a notification saved again, even concurrently, is one row and keeps its delivery mark", func(t *testing.T) {
				testNotificationOnce(t, impl.open(t))
			})
			t.Run("page tokens not issued for the query are rejected", func(t *testing.T) { testInvalidPageTokens(t, impl.open(t)) })
		})
	}
}

func testSagaLog(t *testing.T, store app.Store) {
	ctx := ctxFor(t)
	order, other := testenv.IDFor("order-a"), testenv.IDFor("order-b")
	// Recorded out of occurrence order, as cross-topic delivery can do; two
	// share a time and are then ordered by event id.
	recorded := []app.SagaEvent{
		sagaEvent(order, "completed", base.Add(3*time.Second), notification.OrderCompleted),
		sagaEvent(order, "created", base, notification.OrderCreated),
		sagaEvent(order, "reserved", base.Add(time.Second), "STOCK_RESERVED"),
		sagaEvent(order, "paid", base.Add(2*time.Second), "PAYMENT_PROCESSED"),
		sagaEvent(order, "updated", base.Add(2*time.Second), "INVENTORY_UPDATED"),
		sagaEvent(other, "created", base, notification.OrderCreated),
	}
	recorded[2].CausationID, recorded[2].CustomerID = "", "" // optional fields may be empty
	for _, e := range recorded {
		if err := store.RecordSagaEvent(ctx, e); err != nil {
			t.Fatalf("record %s: %v", e.EventID, err)
		}
	}
	tied := []app.SagaEvent{recorded[3], recorded[4]}
	if tied[0].EventID > tied[1].EventID {
		tied[0], tied[1] = tied[1], tied[0]
	}
	want := []app.SagaEvent{recorded[1], recorded[2], tied[0], tied[1], recorded[0]}
	got, err := store.SagaLog(ctx, order)
	if err != nil {
		t.Fatalf("saga log: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("saga log\n got %v\nwant %v", got, want)
	}
	if got, err := store.SagaLog(ctx, testenv.IDFor("no-such-order")); err != nil || len(got) != 0 {
		t.Fatalf("unknown order: %v, %v; want nothing", got, err)
	}
}

func testSagaEventOnce(t *testing.T, store app.Store) {
	ctx := ctxFor(t)
	order := testenv.IDFor("order-dup")
	e := sagaEvent(order, "created", base, notification.OrderCreated)
	for range 3 {
		if err := store.RecordSagaEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() { errs <- store.RecordSagaEvent(ctx, e) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.SagaLog(ctx, order)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], e) {
		t.Fatalf("after 19 writes of one event the log holds %v, want exactly %v", got, e)
	}
}

func testNotificationPages(t *testing.T, store app.Store) {
	ctx := ctxFor(t)
	customer, other := testenv.IDFor("customer-pages"), testenv.IDFor("customer-other")
	const n = 5
	var newestFirst []notification.Notification
	for i := range n {
		newestFirst = append([]notification.Notification{note(customer, fmt.Sprint("n", i), base.Add(time.Duration(i)*time.Minute))}, newestFirst...)
	}
	// Saved in a scrambled order; the store orders by send time.
	for _, i := range []int{2, 4, 0, 3, 1} {
		if _, err := store.SaveNotification(ctx, newestFirst[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.SaveNotification(ctx, note(other, "elsewhere", base.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}

	for _, size := range []int{2, 5, n + 10, 1} {
		var got []notification.Notification
		token := ""
		for pages := 0; ; pages++ {
			if pages > n+1 {
				t.Fatalf("page size %d: more than %d pages", size, n+1)
			}
			page, err := store.ListNotifications(ctx, customer, size, token)
			if err != nil {
				t.Fatalf("page size %d, page %d: %v", size, pages, err)
			}
			if len(page.Notifications) > size {
				t.Fatalf("page size %d: page of %d", size, len(page.Notifications))
			}
			got = append(got, page.Notifications...)
			if page.NextPageToken == "" {
				break
			}
			// A token leads on: its page holds something, unless the last
			// page was exactly full (Cassandra cannot tell that in advance).
			if len(page.Notifications) < size {
				t.Fatalf("page size %d: a short page (%d) with a next token", size, len(page.Notifications))
			}
			token = page.NextPageToken
		}
		if !reflect.DeepEqual(got, newestFirst) {
			t.Fatalf("page size %d: listed\n%v\nwant newest first\n%v", size, got, newestFirst)
		}
	}
	page, err := store.ListNotifications(ctx, testenv.IDFor("nobody"), 10, "")
	if err != nil || len(page.Notifications) != 0 || page.NextPageToken != "" {
		t.Fatalf("customer without notifications: %+v, %v", page, err)
	}
}

func testNotificationOnce(t *testing.T, store app.Store) {
	ctx := ctxFor(t)
	customer := testenv.IDFor("customer-dup")
	n := note(customer, "dup", base)
	delivered, err := store.SaveNotification(ctx, n)
	if err != nil || delivered {
		t.Fatalf("first save: delivered %v, %v", delivered, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			_, err := store.SaveNotification(ctx, n)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if delivered, err := store.SaveNotification(ctx, n); err != nil || delivered {
		t.Fatalf("save before delivery: delivered %v, %v", delivered, err)
	}
	if err := store.MarkDelivered(ctx, n, base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a redelivery after the send sees the mark, and keeps it
		if delivered, err := store.SaveNotification(ctx, n); err != nil || !delivered {
			t.Fatalf("save after delivery: delivered %v, %v", delivered, err)
		}
	}
	page, err := store.ListNotifications(ctx, customer, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Notifications) != 1 || page.Notifications[0] != n {
		t.Fatalf("after 20 saves of one notification: %v, want exactly %v", page.Notifications, n)
	}
}

func testInvalidPageTokens(t *testing.T, store app.Store) {
	ctx := ctxFor(t)
	customer := testenv.IDFor("customer-tokens")
	for i := range 3 {
		if _, err := store.SaveNotification(ctx, note(customer, fmt.Sprint("t", i), base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	page, err := store.ListNotifications(ctx, customer, 1, "")
	if err != nil || page.NextPageToken == "" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(page.NextPageToken)
	if err != nil {
		raw = []byte(page.NextPageToken) // another store's format: tamper with it as it is
	}
	tampered := append([]byte{}, raw...)
	tampered[len(tampered)-1] ^= 0xff
	for name, tc := range map[string]struct{ customer, token string }{
		"not base64":           {customer, "%%%not-a-token%%%"},
		"another customer's":   {testenv.IDFor("customer-thief"), page.NextPageToken},
		"garbage":              {customer, base64.RawURLEncoding.EncodeToString([]byte("garbage that is long enough"))},
		"truncated":            {customer, page.NextPageToken[:4]},
		"forged paging state":  {customer, base64.RawURLEncoding.EncodeToString(append(raw[:9:9], []byte{0xde, 0xad, 0xbe, 0xef}...))},
		"tampered paging tail": {customer, base64.RawURLEncoding.EncodeToString(tampered)},
	} {
		_, err := store.ListNotifications(ctx, tc.customer, 1, tc.token)
		if name == "tampered paging tail" && err == nil {
			continue // a flipped bit inside the state may still be a valid position: allowed
		}
		if !errors.Is(err, app.ErrInvalidPageToken) {
			t.Errorf("%s token: %v, want ErrInvalidPageToken", name, err)
		}
	}
}

// Restarting the service re-runs start-up against an existing keyspace: no
// migration is applied twice and the data stays.
func TestCassandraReopenKeepsSchemaAndData(t *testing.T) {
	keyspace := cassandratest.Keyspace(t)
	first := openCassandra(t, keyspace)
	e := sagaEvent(testenv.IDFor("order-reopen"), "created", base, notification.OrderCreated)
	if err := first.RecordSagaEvent(ctxFor(t), e); err != nil {
		t.Fatal(err)
	}
	second := openCassandra(t, keyspace)
	got, err := second.SagaLog(ctxFor(t), e.OrderID)
	if err != nil || len(got) != 1 {
		t.Fatalf("after reopening: %v, %v", got, err)
	}
	if err := second.Ping(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
}

// The configured consistency level is the one used: LOCAL_QUORUM (the
// default) works on this one-node, replication-factor-1 cluster, while a
// level needing three replicas cannot be met.
func TestCassandraUsesTheConfiguredConsistency(t *testing.T) {
	keyspace := cassandratest.Keyspace(t)
	openCassandra(t, keyspace) // LOCAL_QUORUM: schema and the migration table read work
	cfg := cassandraConfig(keyspace)
	cfg.Consistency = gocql.Three
	repo, err := adapters.OpenCassandra(ctxFor(t), cfg, migrations.FS)
	if err == nil {
		repo.Close()
		t.Fatal("consistency THREE on one replica succeeded; the setting is not applied")
	}
	var unavailable *gocql.RequestErrUnavailable
	if !errors.As(err, &unavailable) {
		t.Fatalf("consistency THREE: %v, want an Unavailable error", err)
	}
}

func TestOpenCassandraRejectsBadNames(t *testing.T) {
	for name, mutate := range map[string]func(*adapters.CassandraConfig){
		"keyspace with a quote": func(c *adapters.CassandraConfig) { c.Keyspace = "x'; DROP" },
		"keyspace too long":     func(c *adapters.CassandraConfig) { c.Keyspace = "k" + string(make([]byte, 60)) },
		"replication injection": func(c *adapters.CassandraConfig) { c.Replication = "{'class':'SimpleStrategy'}; DROP KEYSPACE x" },
		"replication not a map": func(c *adapters.CassandraConfig) { c.Replication = "SimpleStrategy" },
	} {
		cfg := cassandraConfig("valid_name")
		mutate(&cfg)
		if repo, err := adapters.OpenCassandra(context.Background(), cfg, migrations.FS); err == nil {
			repo.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

// A producer that redoes a lost transaction emits the same event id with a
// later time: the store keeps answering the first one.
func testPinOccurredAt(t *testing.T, store app.Store) {
	ctx := ctxFor(t)
	order, event := testenv.IDFor("order-pin"), testenv.IDFor("event-pin")
	first := base.Add(1500 * time.Microsecond) // sub-millisecond part is dropped
	got, err := store.PinOccurredAt(ctx, order, event, first)
	if err != nil || !got.Equal(first.Truncate(time.Millisecond)) {
		t.Fatalf("first pin: %v, %v; want %v", got, err, first.Truncate(time.Millisecond))
	}
	again, err := store.PinOccurredAt(ctx, order, event, first.Add(7*time.Second))
	if err != nil || !again.Equal(got) {
		t.Fatalf("pin of the same event with a later time: %v, %v; want the first, %v", again, err, got)
	}
	other, err := store.PinOccurredAt(ctx, testenv.IDFor("order-pin-2"), event, first.Add(time.Second))
	if err != nil || !other.Equal(first.Add(time.Second).Truncate(time.Millisecond)) {
		t.Fatalf("same event id under another order: %v, %v", other, err)
	}
}

// Two replicas can hold one partition for a moment during a rebalance, so
// copies of one event (a producer's re-emission carries a later time) can be
// pinned at the same instant: every caller must get the same time back, or the
// saga log would keep the event twice (its key holds the time).
func testPinOccurredAtConcurrently(t *testing.T, store app.Store) {
	ctx := ctxFor(t)
	const events, copies = 20, 8
	for e := range events {
		order, event := testenv.IDFor(fmt.Sprintf("order-pin-race-%d", e)), testenv.IDFor(fmt.Sprintf("event-pin-race-%d", e))
		got := make([]time.Time, copies)
		errs := make([]error, copies)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c := range copies {
			wg.Go(func() {
				<-start
				got[c], errs[c] = store.PinOccurredAt(ctx, order, event, base.Add(time.Duration(c)*time.Second))
			})
		}
		close(start)
		wg.Wait()
		for c := range copies {
			if errs[c] != nil {
				t.Fatalf("event %d copy %d: %v", e, c, errs[c])
			}
			if !got[c].Equal(got[0]) {
				t.Fatalf("event %d: copies pinned different times %v; want one", e, got)
			}
		}
	}
}
