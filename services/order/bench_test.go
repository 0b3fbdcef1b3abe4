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
		time.Hour, app.NewChanges(), time.Second, nil)
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
