package adapters

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// BenchmarkStore measures the shipment store on FerretDB at a given number of
// documents: create (Apply on a new order, with its outbox entry and marker),
// update (Apply of a cancel on an existing order: read + version-checked
// update), get by id, a customer's first page (all buckets), and the relay's two ways of finding pending work — the
// pending_outbox markers versus a query on the shipment collections themselves
// (what RecoverMarkers runs once at start-up).
//
//	make infra-up && go test -run '^$' -bench Store -benchtime 200x ./services/shipping/internal/adapters/
func BenchmarkStore(b *testing.B) {
	for _, size := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("docs=%d", size), func(b *testing.B) {
			repo, db := newTestRepository(b)
			ctx := context.Background()
			ids := seed(b, repo, size)
			perSec := func(b *testing.B) {
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			}

			b.Run("get", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					if _, err := repo.Get(ctx, ids[i%len(ids)]); err != nil {
						b.Fatal(err)
					}
				}
				perSec(b)
			})
			b.Run("get-8-goroutines", func(b *testing.B) {
				var next atomic.Int64
				b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0))) // about 8 goroutines
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := repo.Get(ctx, ids[int(next.Add(1))%len(ids)]); err != nil {
							b.Error(err)
							return
						}
					}
				})
				perSec(b)
			})
			b.Run("list-customer-page", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					customer := testenv.IDFor(fmt.Sprintf("seed-customer-%d", i%1000))
					if _, _, err := repo.ListByCustomer(ctx, customer, app.DefaultPageSize, ""); err != nil {
						b.Fatal(err)
					}
				}
				perSec(b)
			})
			b.Run("update", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					orderID := ids[i%len(ids)]
					if _, err := repo.Apply(ctx, orderID, testenv.UniqueName("ev-"), func(current *shipment.Shipment) (app.Change, error) {
						r, err := shipment.Cancel(current, orderID, current.CustomerID, "bench", testNow)
						if err != nil || !r.Changed() {
							// Already cancelled by an earlier round: append a scan instead.
							next := *current
							next.Tracking = append(next.Tracking, shipment.TrackingEntry{Status: current.Status, Description: "bench", At: testNow})
							return app.Change{Shipment: &next}, nil
						}
						return app.Change{Shipment: r.Shipment}, nil
					}); err != nil {
						b.Fatal(err)
					}
				}
				perSec(b)
			})
			b.Run("create", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					orderID := testenv.IDFor(fmt.Sprintf("bench-new-%d-%d", size, i))
					s := testShipment(orderID, testenv.IDFor("bench-customer"), testNow)
					env := createdEnvelope(b, s, testenv.IDFor(fmt.Sprintf("bench-new-event-%d-%d", size, i)))
					if _, err := repo.Apply(ctx, orderID, env.GetCausationId(), func(*shipment.Shipment) (app.Change, error) {
						return app.Change{Shipment: s, Events: []*eventsv1.Envelope{env}}, nil
					}); err != nil {
						b.Fatal(err)
					}
				}
				perSec(b)
			})
			b.Run("find-pending-via-markers", func(b *testing.B) {
				for b.Loop() {
					cur, err := db.Collection(PendingCollection).Find(ctx, bson.D{})
					if err != nil {
						b.Fatal(err)
					}
					var m []pendingMarker
					if err := cur.All(ctx, &m); err != nil {
						b.Fatal(err)
					}
				}
				perSec(b)
			})
			b.Run("find-pending-via-shipments-query", func(b *testing.B) {
				for b.Loop() {
					if _, err := repo.RecoverMarkers(ctx); err != nil {
						b.Fatal(err)
					}
				}
				perSec(b)
			})
		})
	}
}

// seed inserts n published (empty outbox) shipment documents in batches and
// returns their order ids.
func seed(b *testing.B, repo *ShipmentMongoRepository, n int) []string {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	ids := make([]string, 0, n)
	const batch = 500
	for len(ids) < n {
		byBucket := map[string][]any{}
		for range min(batch, n-len(ids)) {
			id := testenv.IDFor(fmt.Sprintf("seed-%d-%d", n, len(ids)))
			doc := stateOf(testShipment(id, testenv.IDFor(fmt.Sprintf("seed-customer-%d", len(ids)%1000)), testNow))
			doc.Version = 1
			doc.Processed = []string{testenv.IDFor("seed-event-" + id)}
			byBucket[BucketCollection(id)] = append(byBucket[BucketCollection(id)], doc)
			ids = append(ids, id)
		}
		for name, docs := range byBucket {
			if _, err := repo.buckets[name].InsertMany(ctx, docs); err != nil {
				b.Fatalf("seed %s: %v", name, err)
			}
		}
	}
	b.Logf("seeded %d documents in %s", n, time.Since(start).Round(time.Millisecond))
	return ids
}
