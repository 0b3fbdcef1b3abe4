package order_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/services/order/internal/adapters"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

// The store side of the service on the real MariaDB, without Kafka:
// CreateOrder (order + lines + step + outbox row) and RecordSagaEvent (inbox
// claim, row lock, step, version) transactions per second, 8 at a time.
//
//	go test -run '^$' -bench . -benchtime 2000x ./services/order/
func BenchmarkUseCases(b *testing.B) {
	db, _ := testenv.MySQLDatabase(b)
	ctx := context.Background()
	if err := adapters.Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	now := func() time.Time { return time.Now().UTC() }
	a := app.New(app.Deps{Repo: adapters.NewOrderMySQLRepository(db, "order", now), Encode: ports.Encode, Now: now},
		time.Hour, app.NewWatchers(), nil)
	draft := func() order.Draft {
		return order.Draft{CustomerID: events.NewID(), Currency: "EUR", PaymentToken: "tok_visa",
			Lines:           []order.Line{{SKU: "BOOK-1", Quantity: 2, UnitPriceMinor: 1250}, {SKU: "PEN-2", Quantity: 1, UnitPriceMinor: 99}},
			ShippingAddress: order.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", CountryCode: "DE"}}
	}
	var ids []string
	b.Run("CreateOrder", func(b *testing.B) {
		b.SetParallelism(4) // 4 × GOMAXPROCS(2) = 8 callers
		created := make(chan string, b.N)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				o, err := a.CreateOrder.Handle(ctx, draft())
				if err != nil {
					b.Error(err)
					return
				}
				created <- o.ID
			}
		})
		close(created)
		ids = ids[:0]
		for id := range created {
			ids = append(ids, id)
		}
	})
	b.Run("RecordSagaEvent", func(b *testing.B) {
		if len(ids) == 0 {
			b.Fatal("no orders")
		}
		b.SetParallelism(4)
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := ids[int(next.Add(1))%len(ids)]
				err := a.RecordSagaEvent.Handle(ctx, app.SagaEvent{OrderID: id, EventID: events.NewID(),
					Type: "PAYMENT_PROCESSED", OccurredAt: now(), Detail: "payment captured"})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// The order service's side of whole sagas, each followed by a WatchOrder
// stream: CreateOrder, a watcher, the four saga events (stepGap apart, as
// the other services' hops would space them) and the watcher's terminal
// snapshot. It reports this process's CPU per saga (user + system, from
// getrusage: MariaDB's own CPU is not in it) and the watchers' order reads.
//
//	go test -run '^$' -bench WatchedSagas -benchtime 300x ./services/order/
func BenchmarkWatchedSagas(b *testing.B) {
	for _, stepGap := range []time.Duration{0, 100 * time.Millisecond} {
		b.Run("gap="+stepGap.String(), func(b *testing.B) { benchWatchedSagas(b, stepGap) })
	}
}
