package adapters

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// callLog publishes through a real producer and records, per call, the
// event ids and whether Kafka acknowledged them.
type callLog struct {
	pub   Publisher
	mu    sync.Mutex
	calls []struct {
		ids []string
		err error
	}
}

func (c *callLog) Publish(ctx context.Context, msgs ...bus.Message) error {
	err := c.pub.Publish(ctx, msgs...)
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.Headers[bus.HeaderEventID])
	}
	c.mu.Lock()
	c.calls = append(c.calls, struct {
		ids []string
		err error
	}{ids, err})
	c.mu.Unlock()
	return err
}

// failedBefore counts failed calls carrying id before the first successful
// call carrying until, and whether there was one.
func (c *callLog) failedBefore(id, until string) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	failed := 0
	for _, call := range c.calls {
		for _, x := range call.ids {
			if call.err == nil && x == until {
				return failed, true
			}
			if call.err != nil && x == id {
				failed++
			}
		}
	}
	return failed, false
}

func (c *callLog) acknowledged(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, call := range c.calls {
		for _, x := range call.ids {
			if call.err == nil && x == id {
				return true
			}
		}
	}
	return false
}

// applyEvent stores one SHIPMENT_CREATED caused by cause in orderID's document.
func applyEvent(t *testing.T, repo *ShipmentMongoRepository, s *shipment.Shipment, cause string) string {
	t.Helper()
	env := createdEnvelope(t, s, cause)
	if _, err := repo.Apply(context.Background(), s.OrderID, cause, func(*shipment.Shipment) (app.Change, error) {
		return app.Change{Shipment: s, Events: []*eventsv1.Envelope{env}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	return env.GetEventId()
}

// rewriteOutbox changes orderID's stored outbox entries (the relay is not running).
func rewriteOutbox(t *testing.T, db *mongo.Database, orderID string, change func(items []outboxItem)) {
	t.Helper()
	doc := rawDoc(t, db, orderID)
	change(doc.Outbox)
	if _, err := db.Collection(BucketCollection(orderID)).UpdateOne(context.Background(), bson.D{{Key: "_id", Value: orderID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "outbox", Value: doc.Outbox}}}}); err != nil {
		t.Fatal(err)
	}
}

func parkedCount(t *testing.T, db *mongo.Database) int64 {
	t.Helper()
	n, err := db.Collection(ParkedCollection).CountDocuments(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// On FerretDB and Kafka: an entry too large for Kafka and one for a topic
// that does not exist are tried MaxAttempts times and parked; the oversize
// entry's order's next entry (same topic) waits until it is parked and is
// published then; another order's entry is published meanwhile. Retrying the
// missing-topic entry after the topic is created publishes it and empties
// the parked collection of it.
func TestMongoRelayParksPoisonEntriesAndGoesOn(t *testing.T) {
	repo, db := newTestRepository(t)
	ctx := context.Background()
	prefix := testenv.UniqueName("t") + "."
	if err := bus.EnsureTopics(ctx, testenv.Brokers(), bus.TopicSpec{Name: prefix + events.TopicShipments, Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatalf("Kafka for tests (run `make infra-up`): %v", err)
	}
	producer := bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(prefix))
	t.Cleanup(func() { producer.Close() })

	good := testShipment(testenv.IDFor("order-good"), testenv.IDFor("customer-p"), testNow)
	big := testShipment(testenv.IDFor("order-big"), testenv.IDFor("customer-p"), testNow)
	lost := testShipment(testenv.IDFor("order-lost"), testenv.IDFor("customer-p"), testNow)
	goodID := applyEvent(t, repo, good, testenv.IDFor("good-1"))
	bigID := applyEvent(t, repo, big, testenv.IDFor("big-1"))
	afterBigID := applyEvent(t, repo, big, testenv.IDFor("big-2"))
	lostID := applyEvent(t, repo, lost, testenv.IDFor("lost-1"))
	missingTopic := "missing." + events.TopicShipments
	rewriteOutbox(t, db, big.OrderID, func(items []outboxItem) { items[0].Value = bytes.Repeat([]byte{1}, 2<<20) })
	rewriteOutbox(t, db, lost.OrderID, func(items []outboxItem) { items[0].Topic = missingTopic })

	const maxAttempts = 3
	pub := &callLog{pub: producer}
	relay := NewOutboxRelay(repo, pub, RelayConfig{PollInterval: 5 * time.Millisecond, MaxAttempts: maxAttempts,
		RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, "two entries parked", func() bool { return parkedCount(t, db) == 2 })
	waitFor(t, "every document's outbox settled", func() bool { return len(pendingMarkers(t, db)) == 0 })
	for _, id := range []string{goodID, afterBigID} {
		if !pub.acknowledged(id) {
			t.Errorf("entry %s was not published", id)
		}
	}
	if failed, seen := pub.failedBefore(bigID, afterBigID); !seen || failed != maxAttempts {
		t.Errorf("the oversize entry's next entry went out after %d failed attempts (published: %v), want after all %d", failed, seen, maxAttempts)
	}
	for _, orderID := range []string{big.OrderID, lost.OrderID} {
		if doc := rawDoc(t, db, orderID); len(doc.Outbox) != 0 {
			t.Errorf("order %s outbox %d entries, want 0 (parked ones moved out)", orderID, len(doc.Outbox))
		}
	}
	rows, err := relay.ListOutbox(ctx, true, 10)
	if err != nil || len(rows) != 2 {
		t.Fatalf("parked list %+v, %v; want 2", rows, err)
	}
	for _, row := range rows {
		if row.Attempts != maxAttempts || row.LastError == "" || row.ParkedAt == nil {
			t.Errorf("parked row %+v: want %d attempts, a reason and a time", row, maxAttempts)
		}
	}
	if s := relay.Status(); s.State != outbox.StateActive {
		t.Errorf("status %+v, want active", s)
	}

	if err := bus.EnsureTopics(ctx, testenv.Brokers(), bus.TopicSpec{Name: prefix + missingTopic, Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	// The producer caches topic metadata briefly: wait until it sees the topic.
	waitFor(t, "the producer to see the new topic", func() bool {
		return producer.Publish(ctx, bus.Message{Topic: missingTopic, Key: "probe", Headers: map[string]string{bus.HeaderEventID: events.NewID()}}) == nil
	})
	if _, err := relay.RetryParked(ctx, "no-such-event"); !errors.Is(err, outbox.ErrNotParked) {
		t.Errorf("retry of an unknown id: %v, want ErrNotParked", err)
	}
	if n, err := relay.RetryParked(ctx, lostID); err != nil || n != 1 {
		t.Fatalf("retry %s: %d, %v", lostID, n, err)
	}
	waitFor(t, "the retried entry published", func() bool { return pub.acknowledged(lostID) })
	waitFor(t, "its document settled", func() bool { return len(pendingMarkers(t, db)) == 0 })
	if n := parkedCount(t, db); n != 1 {
		t.Errorf("%d parked entries after the retry, want 1 (the oversize one)", n)
	}
}
