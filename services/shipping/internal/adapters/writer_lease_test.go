package adapters

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

const leaseWait = 2 * time.Minute

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func newTestLease(t *testing.T, db *mongo.Database, holder string) *WriterLease {
	t.Helper()
	l, err := NewWriterLease(db, LeaseConfig{TTL: time.Second, Holder: holder, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runLease runs l until the returned stop is called (stop waits for Run).
func runLease(l *WriterLease) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = l.Run(ctx) })
	return func() { cancel(); wg.Wait() }
}

// waitLong polls cond for up to leaseWait (the lease needs a few TTLs).
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(leaseWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", leaseWait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func holding(l *WriterLease) bool { h, _ := l.Holding(); return h }

func TestLeaseHasOneHolderAndPassesOnAtRelease(t *testing.T) {
	_, db := newTestRepository(t)
	a, b := newTestLease(t, db, "a"), newTestLease(t, db, "b")
	stopA := runLease(a)
	waitLong(t, "a to hold the lease", func() bool { return holding(a) })
	stopB := runLease(b)
	defer stopB()

	// While a renews, b never holds: sample through several TTLs.
	for range 150 {
		if holding(b) {
			t.Fatal("b holds the lease while a renews it")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, epochA := a.Holding()
	stopA() // releases
	if holding(a) {
		t.Fatal("a still holds after its Run returned")
	}
	if _, _, _, err := a.Guard(context.Background()); !errors.Is(err, ErrNotWriter) {
		t.Fatalf("a.Guard after release = %v, want ErrNotWriter", err)
	}
	waitLong(t, "b to take over", func() bool { return holding(b) })
	if _, epochB := b.Holding(); epochB != epochA+1 {
		t.Fatalf("b holds epoch %d, want %d", epochB, epochA+1)
	}
}

// A holder that stops renewing without releasing (as if killed) is replaced,
// and the successor writes only after the old lease has lapsed.
func TestLeaseOfASilentHolderIsTakenAfterItLapsed(t *testing.T) {
	_, db := newTestRepository(t)
	a, b := newTestLease(t, db, "a"), newTestLease(t, db, "b")
	ctxA, killA := context.WithCancel(context.Background())
	doneA := make(chan struct{})
	go func() { defer close(doneA); a.runWithoutRelease(ctxA) }()
	waitLong(t, "a to hold the lease", func() bool { return holding(a) })
	stopB := runLease(b)
	defer stopB()
	killA()
	<-doneA
	killed := time.Now()
	// a's last renewal bounds its lease; it lapses on its own.
	a.mu.Lock()
	aValidUntil := a.validUntil
	a.mu.Unlock()
	waitLong(t, "b to take over", func() bool { return holding(b) })
	if took := time.Now(); took.Before(aValidUntil) {
		t.Fatalf("b writes at %s, before a's lease lapsed at %s", took, aValidUntil)
	}
	t.Logf("takeover %s after the holder fell silent (TTL 1s)", time.Since(killed).Round(time.Millisecond))
	if _, _, _, err := a.Guard(context.Background()); !errors.Is(err, ErrNotWriter) {
		t.Fatalf("a.Guard after its lease lapsed = %v, want ErrNotWriter", err)
	}
}

// runWithoutRelease is Run without the release at the end: a holder that dies.
func (l *WriterLease) runWithoutRelease(ctx context.Context) {
	for ctx.Err() == nil {
		l.step(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(l.cfg.renewEvery()):
		}
	}
}

// A document written under a newer epoch refuses the older epoch's writes,
// and the older holder steps down.
func TestWritesAreFencedByTheEpoch(t *testing.T) {
	repo, db := newTestRepository(t)
	lease := newTestLease(t, db, "old")
	repo.UseLease(lease)
	stop := runLease(lease)
	defer stop()
	waitLong(t, "the lease", func() bool { return holding(lease) })
	_, epoch := lease.Holding()
	ctx := context.Background()
	orderID, customerID := testenv.IDFor("order-fenced"), testenv.IDFor("customer-1")
	s := testShipment(orderID, customerID, testNow)
	apply := func(eventID string) error {
		_, err := repo.Apply(ctx, orderID, eventID, func(*shipment.Shipment) (app.Change, error) {
			return app.Change{Shipment: s, Events: []*eventsv1.Envelope{createdEnvelope(t, s, eventID)}}, nil
		})
		return err
	}
	if err := apply(testenv.IDFor("event-1")); err != nil {
		t.Fatal(err)
	}
	if doc := rawDoc(t, db, orderID); doc.Epoch != epoch {
		t.Fatalf("document epoch %d, want %d", doc.Epoch, epoch)
	}
	// The filter itself: the older epoch's update misses, the newer one's
	// matches (also a document with no epoch at all).
	bump := bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}}
	doc := rawDoc(t, db, orderID)
	if err := repo.updateVersioned(ctx, orderID, doc.Version, epoch+1, bump); err != nil {
		t.Fatalf("update under a newer epoch: %v", err)
	}
	doc = rawDoc(t, db, orderID)
	if err := repo.updateVersioned(ctx, orderID, doc.Version, epoch, bump); !errors.Is(err, ErrConflict) {
		t.Fatalf("update under the older epoch = %v, want ErrConflict", err)
	}
	if _, err := db.Collection(BucketCollection(orderID)).UpdateOne(ctx, bson.D{{Key: "_id", Value: orderID}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "epoch", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	if err := repo.updateVersioned(ctx, orderID, doc.Version, epoch, bump); err != nil {
		t.Fatalf("update of a document without an epoch: %v", err)
	}
	// Through Apply: the newer epoch on the document fences the holder off.
	if err := repo.updateVersioned(ctx, orderID, doc.Version+1, epoch+1, bump); err != nil {
		t.Fatal(err)
	}
	if err := apply(testenv.IDFor("event-2")); !errors.Is(err, ErrFenced) {
		t.Fatalf("Apply under a fenced epoch = %v, want ErrFenced", err)
	}
	waitLong(t, "the fenced holder to step down", func() bool { return !holding(lease) })
}
