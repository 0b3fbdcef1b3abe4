package adapters_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters/cassandratest"
	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
)

// BenchmarkRecordEvent measures the consumer's handler on real Cassandra
// (LOCAL_QUORUM, replication factor 1), as the bus runs it: 8 workers.
// Half the events are customer-facing (log + read + notification + mark).
//
//	go test -run '^$' -bench RecordEvent -benchtime 20000x ./services/notification/internal/adapters/
func BenchmarkRecordEvent(b *testing.B) {
	store := openCassandra(b, cassandratest.Keyspace(b))
	a := app.New(store, adapters.LogSender{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, clock.System{})
	types := []notification.EventType{notification.OrderCreated, "STOCK_RESERVED", notification.PaymentRefunded, "PAYMENT_PROCESSED"}
	var seq atomic.Int64
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			order := testenv.IDFor(fmt.Sprint("bench-order-", i/4))
			cmd := app.RecordEvent{
				Event: notification.Event{ID: testenv.IDFor(fmt.Sprint("bench-event-", i)), Type: types[i%4], OrderID: order,
					CustomerID: testenv.IDFor(fmt.Sprint("bench-customer-", i%100)), OccurredAt: time.Now(),
					OrderTotal: notification.Money{AmountMinor: 100, Currency: "EUR"}, RefundAmount: notification.Money{AmountMinor: 100, Currency: "EUR"}},
				Producer: "order", CausationID: testenv.IDFor(fmt.Sprint("bench-cause-", i)), Envelope: make([]byte, 400),
			}
			if err := a.Commands.RecordEvent.Handle(context.Background(), cmd); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
