package order_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/services/order/internal/adapters"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

// readCountingRepo counts the full order reads (Get) the watchers make.
type readCountingRepo struct {
	app.Repository
	gets atomic.Int64
}

func (r *readCountingRepo) Get(ctx context.Context, id string) (*order.Order, error) {
	r.gets.Add(1)
	return r.Repository.Get(ctx, id)
}

func benchWatchedSagas(b *testing.B, stepGap time.Duration) {
	db, _ := testenv.MySQLDatabase(b)
	ctx := context.Background()
	if err := adapters.Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	now := func() time.Time { return time.Now().UTC() }
	repo := &readCountingRepo{Repository: adapters.NewOrderMySQLRepository(db, "order", now)}
	watchers := app.NewWatchers()
	a := app.New(app.Deps{Repo: repo, Encode: ports.Encode, Now: now, Changed: watchers.Publish},
		time.Hour, watchers, nil)
	steps := []order.EventType{"STOCK_RESERVED", "PAYMENT_PROCESSED", "INVENTORY_UPDATED", "SHIPMENT_CREATED"}
	saga := func() {
		o, err := a.CreateOrder.Handle(ctx, order.Draft{CustomerID: events.NewID(), Currency: "EUR", PaymentToken: "tok_visa",
			Lines:           []order.Line{{SKU: "BOOK-1", Quantity: 2, UnitPriceMinor: 1250}, {SKU: "PEN-2", Quantity: 1, UnitPriceMinor: 99}},
			ShippingAddress: order.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", CountryCode: "DE"}})
		if err != nil {
			b.Error(err)
			return
		}
		var watching sync.WaitGroup
		watching.Add(1)
		var last *order.Order
		go func() {
			defer watching.Done()
			err := a.WatchOrder.Handle(ctx, o.ID, func(sent *order.Order) error { last = sent; return nil })
			if err != nil {
				b.Error(err)
			}
		}()
		for _, typ := range steps {
			time.Sleep(stepGap)
			if err := a.RecordSagaEvent.Handle(ctx, app.SagaEvent{OrderID: o.ID, EventID: events.NewID(), Type: typ,
				OccurredAt: now(), Detail: string(typ)}); err != nil {
				b.Error(err)
				return
			}
		}
		watching.Wait()
		if last == nil || last.Status != order.StatusCompleted {
			b.Errorf("watcher's last snapshot %v, want COMPLETED", last)
		}
	}
	saga() // warm the pool
	repo.gets.Store(0)
	b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 sagas at a time
	cpu := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			saga()
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/saga")
	b.ReportMetric(float64(repo.gets.Load())/float64(b.N), "order-reads/saga")
}

// processCPU is the user + system CPU this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// versionCountingRepo counts the watch poller's version queries.
type versionCountingRepo struct {
	app.Repository
	queries atomic.Int64
}

func (r *versionCountingRepo) VersionsOf(ctx context.Context, ids []string) (map[string]int64, error) {
	r.queries.Add(1)
	return r.Repository.VersionsOf(ctx, ids)
}

// The cross-replica watch poll on the real MariaDB: one round (what a
// replica runs every ORDER_WATCH_POLL_INTERVAL) with `streams` open watches
// spread over `orders` orders, none changed. Reports the store queries and
// the time one round takes; queries/s = queries/round ÷ the interval,
// whatever the number of streams.
//
//	go test -run '^$' -bench WatchPoll -benchtime 200x ./services/order/
func BenchmarkWatchPoll(b *testing.B) {
	db, _ := testenv.MySQLDatabase(b)
	ctx := context.Background()
	if err := adapters.Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	now := func() time.Time { return time.Now().UTC() }
	repo := &versionCountingRepo{Repository: adapters.NewOrderMySQLRepository(db, "order", now)}
	a := app.New(app.Deps{Repo: repo, Encode: ports.Encode, Now: now}, time.Hour, app.NewWatchers(), nil)
	var ids []string
	for range 2000 {
		o, err := a.CreateOrder.Handle(ctx, order.Draft{CustomerID: events.NewID(), Currency: "EUR", PaymentToken: "tok_visa",
			Lines:           []order.Line{{SKU: "BOOK-1", Quantity: 1, UnitPriceMinor: 1250}},
			ShippingAddress: order.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", CountryCode: "DE"}})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, o.ID)
	}
	for _, c := range []struct{ streams, orders int }{{100, 100}, {1000, 10}, {1000, 1000}, {10000, 2000}} {
		b.Run(fmt.Sprintf("streams=%d/orders=%d", c.streams, c.orders), func(b *testing.B) {
			watchers := app.NewWatchers()
			for i := range c.streams {
				w := watchers.Watch(ids[i%c.orders])
				w.Read(1) // as its stream's first read would
				defer w.Stop()
			}
			repo.queries.Store(0)
			b.ResetTimer()
			for range b.N {
				if n, err := watchers.Poll(ctx, repo); n != 0 || err != nil {
					b.Fatalf("poll published %d (%v), want 0", n, err)
				}
			}
			b.ReportMetric(float64(repo.queries.Load())/float64(b.N), "queries/round")
		})
	}
}
