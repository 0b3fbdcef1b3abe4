package adapters

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

var testNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// connectTestMongo connects to the local real stack's FerretDB and fails the
// test when it does not answer.
func connectTestMongo(t testing.TB) *mongo.Client {
	t.Helper()
	client, err := Connect(testenv.MongoURI())
	if err != nil {
		t.Fatalf("FerretDB at %s (SAGASUITE_MONGO_URI; run `make infra-up`): %v", testenv.MongoURI(), err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Ping(ctx, nil); err != nil {
		t.Fatalf("FerretDB at %s (SAGASUITE_MONGO_URI; run `make infra-up`): %v", testenv.MongoURI(), err)
	}
	return client
}

// newTestRepository returns a repository on a fresh database, dropped when
// the test ends.
func newTestRepository(t testing.TB) (*ShipmentMongoRepository, *mongo.Database) {
	t.Helper()
	client := connectTestMongo(t)
	db := client.Database(testenv.UniqueName("shipping_t_"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Errorf("drop database %s: %v", db.Name(), err)
		}
	})
	repo := NewShipmentMongoRepository(db, func() time.Time { return testNow })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := repo.EnsureIndexes(ctx); err != nil {
		t.Fatalf("EnsureIndexes: %v", err)
	}
	return repo, db
}

func testShipment(orderID, customerID string, at time.Time) *shipment.Shipment {
	order := shipment.Order{
		OrderID: orderID, CustomerID: customerID,
		Address: shipment.Address{Name: "Ada", Line1: "Main St 1", Line2: "c/o B", City: "Berlin", PostalCode: "10115", CountryCode: "DE"},
		Lines:   []shipment.Line{{SKU: "BOOK-1", Quantity: 7, UnitPriceMinor: 1500}},
	}
	r, err := shipment.Book(nil, order, shipment.Pack(orderID, order.Lines),
		shipment.Booking{Accepted: true, Carrier: "simpost", TrackingNumber: TrackingNumberFor(orderID), Location: "DE hub"}, at)
	if err != nil {
		panic(err)
	}
	return r.Shipment
}

// createdEnvelope is a SHIPMENT_CREATED caused by causationID.
func createdEnvelope(t testing.TB, s *shipment.Shipment, causationID string) *eventsv1.Envelope {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: s.OrderID, CustomerID: s.CustomerID, Producer: app.Producer, CausationID: causationID, OccurredAt: testNow},
		&eventsv1.ShipmentCreated{ShipmentId: s.ShipmentID, Carrier: s.Carrier, TrackingNumber: s.TrackingNumber})
	if err != nil {
		t.Fatalf("envelope: %v", err)
	}
	return env
}

func rawDoc(t testing.TB, db *mongo.Database, orderID string) shipmentDoc {
	t.Helper()
	var doc shipmentDoc
	if err := db.Collection(BucketCollection(orderID)).FindOne(context.Background(), bson.D{{Key: "_id", Value: orderID}}).Decode(&doc); err != nil {
		t.Fatalf("raw document %s: %v", orderID, err)
	}
	return doc
}

func pendingMarkers(t testing.TB, db *mongo.Database) []string {
	t.Helper()
	cur, err := db.Collection(PendingCollection).Find(context.Background(), bson.D{})
	if err != nil {
		t.Fatalf("pending markers: %v", err)
	}
	var markers []pendingMarker
	if err := cur.All(context.Background(), &markers); err != nil {
		t.Fatalf("pending markers: %v", err)
	}
	ids := make([]string, len(markers))
	for i, m := range markers {
		ids[i] = m.OrderID
	}
	return ids
}

func TestApplyStoresStateInboxAndOutboxTogether(t *testing.T) {
	repo, db := newTestRepository(t)
	ctx := context.Background()
	orderID, customerID, eventID := testenv.IDFor("order-1"), testenv.IDFor("customer-1"), testenv.IDFor("event-1")
	want := testShipment(orderID, customerID, testNow)
	env := createdEnvelope(t, want, eventID)

	applied, err := repo.Apply(ctx, orderID, eventID, func(current *shipment.Shipment) (app.Change, error) {
		if current != nil {
			t.Errorf("current = %+v, want nil for a new order", current)
		}
		return app.Change{Shipment: want, Events: []*eventsv1.Envelope{env}}, nil
	})
	if err != nil || !applied {
		t.Fatalf("Apply = %v, %v; want applied", applied, err)
	}
	got, err := repo.Get(ctx, orderID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Get =\n%+v\nwant\n%+v", got, want)
	}
	doc := rawDoc(t, db, orderID)
	if doc.Version != 1 || !slices.Equal(doc.Processed, []string{eventID}) || len(doc.Outbox) != 1 {
		t.Fatalf("document version %d, processed %v, %d outbox entries; want 1, [%s], 1", doc.Version, doc.Processed, len(doc.Outbox), eventID)
	}
	wantMsg, err := bus.EncodeEnvelope(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Outbox[0].message(); got.Topic != events.TopicShipments || got.Key != orderID || !reflect.DeepEqual(got.Value, wantMsg.Value) ||
		got.Headers[bus.HeaderEventID] != env.GetEventId() || got.Headers[bus.HeaderType] != "SHIPMENT_CREATED" {
		t.Fatalf("outbox entry = %+v", got)
	}
	if m := pendingMarkers(t, db); !slices.Equal(m, []string{orderID}) {
		t.Fatalf("pending markers = %v, want [%s]", m, orderID)
	}

	// The same event again: decide is not called, nothing changes.
	applied, err = repo.Apply(ctx, orderID, eventID, func(*shipment.Shipment) (app.Change, error) {
		t.Error("decide called for a processed event id")
		return app.Change{}, nil
	})
	if err != nil || applied {
		t.Fatalf("duplicate Apply = %v, %v; want not applied", applied, err)
	}
	if again := rawDoc(t, db, orderID); again.Version != 1 || len(again.Outbox) != 1 {
		t.Fatalf("duplicate changed the document: version %d, %d outbox entries", again.Version, len(again.Outbox))
	}

	// Another event that changes nothing is still recorded, once.
	other := testenv.IDFor("event-2")
	applied, err = repo.Apply(ctx, orderID, other, func(current *shipment.Shipment) (app.Change, error) {
		if !reflect.DeepEqual(current, want) {
			t.Errorf("current = %+v, want the stored shipment", current)
		}
		return app.Change{}, nil
	})
	if err != nil || !applied {
		t.Fatalf("no-op Apply = %v, %v", applied, err)
	}
	if doc := rawDoc(t, db, orderID); doc.Version != 2 || !slices.Equal(doc.Processed, []string{eventID, other}) || doc.Status != "CREATED" {
		t.Fatalf("after a no-op: version %d, processed %v, status %s", doc.Version, doc.Processed, doc.Status)
	}
	if repo.locks.held() != 0 {
		t.Fatalf("%d order locks left behind", repo.locks.held())
	}
}

func TestApplyPropagatesDecisionErrorsAndWritesNothing(t *testing.T) {
	repo, db := newTestRepository(t)
	orderID := testenv.IDFor("order-err")
	boom := errors.New("carrier down")
	_, err := repo.Apply(context.Background(), orderID, testenv.IDFor("e"), func(*shipment.Shipment) (app.Change, error) {
		return app.Change{}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Apply err = %v, want %v", err, boom)
	}
	if _, err := repo.Get(context.Background(), orderID); !errors.Is(err, shipment.ErrNotFound) {
		t.Fatalf("Get after a failed decision: %v, want ErrNotFound", err)
	}
	if n, _ := db.Collection(BucketCollection(orderID)).CountDocuments(context.Background(), bson.D{}); n != 0 {
		t.Fatalf("%d documents written by a failed decision", n)
	}
}

// TestConcurrentAppendsLoseNothing is the guard against FerretDB v1's lost
// updates: 50 goroutines each apply a different event to the same shipment
// (each appends a tracking entry and an outbox entry) while the relay drains
// the outbox. Every append must survive, and every event be published.
func TestConcurrentAppendsLoseNothing(t *testing.T) {
	const writers = 50
	repo, db := newTestRepository(t)
	ctx := context.Background()
	orderID, customerID := testenv.IDFor("order-busy"), testenv.IDFor("customer-busy")
	base := testShipment(orderID, customerID, testNow)
	if _, err := repo.Apply(ctx, orderID, testenv.IDFor("busy-create"), func(*shipment.Shipment) (app.Change, error) {
		return app.Change{Shipment: base}, nil
	}); err != nil {
		t.Fatalf("create: %v", err)
	}

	pub := &recordingPublisher{}
	relay := NewOutboxRelay(repo, pub, RelayConfig{PollInterval: 5 * time.Millisecond})
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()

	wantEvents := make([]string, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		eventID := testenv.IDFor(fmt.Sprintf("busy-%d", i))
		wantEvents[i] = events.DeriveID(eventID, eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED)
		wg.Go(func() {
			_, err := repo.Apply(ctx, orderID, eventID, func(current *shipment.Shipment) (app.Change, error) {
				next := *current
				next.Tracking = append(slices.Clone(current.Tracking), shipment.TrackingEntry{
					Status: shipment.StatusCreated, Description: "scan " + eventID, At: testNow,
				})
				return app.Change{Shipment: &next, Events: []*eventsv1.Envelope{createdEnvelope(t, &next, eventID)}}, nil
			})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Apply: %v", err)
	}

	waitFor(t, "the relay to drain the outbox", func() bool {
		return len(rawDoc(t, db, orderID).Outbox) == 0 && len(pendingMarkers(t, db)) == 0
	})
	stopRelay()
	if err := <-relayDone; err != nil {
		t.Fatalf("relay: %v", err)
	}

	doc := rawDoc(t, db, orderID)
	if len(doc.Tracking) != writers+1 || len(doc.Processed) != writers+1 {
		t.Fatalf("%d tracking entries and %d processed ids survived, want %d each: updates were lost",
			len(doc.Tracking), len(doc.Processed), writers+1)
	}
	// 1 insert + 50 appends + at least one outbox removal, each +1.
	if doc.Version < writers+2 {
		t.Fatalf("version %d, want at least %d", doc.Version, writers+2)
	}
	got := pub.eventIDs()
	slices.Sort(got)
	got = slices.Compact(got)
	slices.Sort(wantEvents)
	if !slices.Equal(got, wantEvents) {
		t.Fatalf("published %d distinct events, want the %d appended", len(got), len(wantEvents))
	}
	if repo.locks.held() != 0 {
		t.Fatalf("%d order locks left behind", repo.locks.held())
	}
}

func TestRelayCrashBetweenPublishAndRemovalRepublishes(t *testing.T) {
	repo, db := newTestRepository(t)
	ctx := context.Background()
	orderID, eventID := testenv.IDFor("order-crash"), testenv.IDFor("crash-event")
	s := testShipment(orderID, testenv.IDFor("customer-crash"), testNow)
	env := createdEnvelope(t, s, eventID)
	if _, err := repo.Apply(ctx, orderID, eventID, func(*shipment.Shipment) (app.Change, error) {
		return app.Change{Shipment: s, Events: []*eventsv1.Envelope{env}}, nil
	}); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	pub := &recordingPublisher{}
	crash := errors.New("relay killed after publishing")
	crashing := NewOutboxRelay(repo, pub, RelayConfig{afterPublish: func([]string) error { return crash }})
	if _, err := crashing.Flush(ctx); !errors.Is(err, crash) {
		t.Fatalf("Flush = %v, want the crash", err)
	}
	if doc := rawDoc(t, db, orderID); len(doc.Outbox) != 1 || len(pendingMarkers(t, db)) != 1 {
		t.Fatalf("after the crash: %d outbox entries, markers %v; want both kept", len(doc.Outbox), pendingMarkers(t, db))
	}

	restarted := NewOutboxRelay(repo, pub, RelayConfig{})
	if n, err := restarted.Flush(ctx); err != nil || n != 1 {
		t.Fatalf("Flush after restart = %d, %v; want 1 document", n, err)
	}
	if got := pub.eventIDs(); !slices.Equal(got, []string{env.GetEventId(), env.GetEventId()}) {
		t.Fatalf("published %v, want the event twice (at least once; consumers dedupe)", got)
	}
	if doc := rawDoc(t, db, orderID); len(doc.Outbox) != 0 || len(pendingMarkers(t, db)) != 0 {
		t.Fatalf("after the second pass: %d outbox entries, markers %v; want none", len(doc.Outbox), pendingMarkers(t, db))
	}
	if n, err := restarted.Flush(ctx); err != nil || n != 0 || len(pub.eventIDs()) != 2 {
		t.Fatalf("idle Flush = %d, %v, %d published; want nothing more", n, err, len(pub.eventIDs()))
	}
}

func TestRelayKeepsEntriesAddedAfterItsRead(t *testing.T) {
	repo, db := newTestRepository(t)
	ctx := context.Background()
	orderID := testenv.IDFor("order-late")
	s := testShipment(orderID, testenv.IDFor("customer-late"), testNow)
	first, second := testenv.IDFor("late-1"), testenv.IDFor("late-2")
	if _, err := repo.Apply(ctx, orderID, first, func(*shipment.Shipment) (app.Change, error) {
		return app.Change{Shipment: s, Events: []*eventsv1.Envelope{createdEnvelope(t, s, first)}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	secondEnv := createdEnvelope(t, s, second)
	pub := &recordingPublisher{}
	// Between the relay's publish and its removal a handler appends another
	// event: the removal must keep it (and its marker).
	relay := NewOutboxRelay(repo, pub, RelayConfig{afterPublish: func([]string) error {
		_, err := repo.Apply(ctx, orderID, second, func(current *shipment.Shipment) (app.Change, error) {
			return app.Change{Shipment: current, Events: []*eventsv1.Envelope{secondEnv}}, nil
		})
		return err
	}})
	if _, err := relay.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	doc := rawDoc(t, db, orderID)
	if len(doc.Outbox) != 1 || doc.Outbox[0].EventID != secondEnv.GetEventId() || len(pendingMarkers(t, db)) != 1 {
		t.Fatalf("outbox %+v, markers %v; want only the late event, still marked", doc.Outbox, pendingMarkers(t, db))
	}
}

func TestRecoverMarkersFindsUnmarkedOutboxes(t *testing.T) {
	repo, db := newTestRepository(t)
	ctx := context.Background()
	withOutbox, without := testenv.IDFor("order-r1"), testenv.IDFor("order-r2")
	for _, id := range []string{withOutbox, without} {
		s := testShipment(id, testenv.IDFor("customer-r"), testNow)
		var envs []*eventsv1.Envelope
		if id == withOutbox {
			envs = append(envs, createdEnvelope(t, s, testenv.IDFor("r-event")))
		}
		if _, err := repo.Apply(ctx, id, testenv.IDFor("r-event"), func(*shipment.Shipment) (app.Change, error) {
			return app.Change{Shipment: s, Events: envs}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Collection(PendingCollection).DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	n, err := repo.RecoverMarkers(ctx)
	if err != nil || n != 1 {
		t.Fatalf("RecoverMarkers = %d, %v; want 1", n, err)
	}
	if m := pendingMarkers(t, db); !slices.Equal(m, []string{withOutbox}) {
		t.Fatalf("markers = %v, want [%s]", m, withOutbox)
	}
}

func TestListByCustomerPagesNewestFirst(t *testing.T) {
	repo, _ := newTestRepository(t)
	ctx := context.Background()
	customer, other := testenv.IDFor("customer-list"), testenv.IDFor("customer-other")
	var want []string
	// Five shipments, two of them at the same instant (the order id breaks the tie).
	times := []time.Duration{0, time.Second, 2 * time.Second, 2 * time.Second, 3 * time.Second}
	for i, d := range times {
		id := testenv.IDFor(fmt.Sprintf("list-%d", i))
		s := testShipment(id, customer, testNow.Add(d))
		if _, err := repo.Apply(ctx, id, testenv.IDFor(fmt.Sprintf("list-e-%d", i)), func(*shipment.Shipment) (app.Change, error) {
			return app.Change{Shipment: s}, nil
		}); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	// Newest first; at 2s the greater order id first.
	slices.Reverse(want)
	if want[1] < want[2] {
		want[1], want[2] = want[2], want[1]
	}
	otherID := testenv.IDFor("list-other")
	if _, err := repo.Apply(ctx, otherID, testenv.IDFor("list-other-e"), func(*shipment.Shipment) (app.Change, error) {
		return app.Change{Shipment: testShipment(otherID, other, testNow)}, nil
	}); err != nil {
		t.Fatal(err)
	}

	var got []string
	token := ""
	for pages := 0; ; pages++ {
		if pages == 3 {
			t.Fatalf("more than 3 pages of 2 for 5 shipments; so far %v", got)
		}
		page, next, err := repo.ListByCustomer(ctx, customer, 2, token)
		if err != nil {
			t.Fatalf("ListByCustomer(token %q): %v", token, err)
		}
		for _, s := range page {
			got = append(got, s.OrderID)
		}
		if next == "" {
			break
		}
		token = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v\nwant     %v", got, want)
	}
	for _, bad := range []string{"%%%", "bm90LWEtdG9rZW4", encodePageToken(testNow, "")} {
		if _, _, err := repo.ListByCustomer(ctx, customer, 2, bad); !errors.Is(err, app.ErrBadPageToken) {
			t.Errorf("token %q: err = %v, want ErrBadPageToken", bad, err)
		}
	}
	if page, next, err := repo.ListByCustomer(ctx, testenv.IDFor("nobody"), 2, ""); err != nil || len(page) != 0 || next != "" {
		t.Fatalf("unknown customer: %v, %q, %v", page, next, err)
	}
}

func TestGetUnknownOrderIsNotFound(t *testing.T) {
	repo, _ := newTestRepository(t)
	if _, err := repo.Get(context.Background(), testenv.IDFor("missing")); !errors.Is(err, shipment.ErrNotFound) {
		t.Fatalf("Get = %v, want ErrNotFound", err)
	}
}

type recordingPublisher struct {
	mu   sync.Mutex
	msgs []bus.Message
}

func (p *recordingPublisher) Publish(_ context.Context, msgs ...bus.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, msgs...)
	return nil
}

func (p *recordingPublisher) eventIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, len(p.msgs))
	for i, m := range p.msgs {
		ids[i] = m.Headers[bus.HeaderEventID]
	}
	return ids
}

// waitFor polls cond for up to 30 s and fails naming what it waited for.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
