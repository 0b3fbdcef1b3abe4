package adapters_test

import (
	"context"
	"testing"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/services/inventory/internal/domain/stock"
)

// BenchmarkReserveAndDeduct measures inventory's two happy-path handler
// transactions (ORDER_CREATED → reserve, PAYMENT_PROCESSED → deduct) per
// order, run in parallel on the real MariaDB, 8 SKUs, 2 lines per order.
//
//	go test -run '^$' -bench ReserveAndDeduct -benchtime 2000x ./services/inventory/internal/adapters/
func BenchmarkReserveAndDeduct(b *testing.B) {
	f := newFixture(b)
	skus := []string{"SKU-0", "SKU-1", "SKU-2", "SKU-3", "SKU-4", "SKU-5", "SKU-6", "SKU-7"}
	for _, sku := range skus {
		f.product(b, sku, 100, 1_000_000)
	}
	ctx := context.Background()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			id := events.NewID()
			o := orderOf(stock.Line{SKU: skus[i%8], Quantity: 1, UnitPriceMinor: 100}, stock.Line{SKU: skus[(i+3)%8], Quantity: 1, UnitPriceMinor: 100})
			if _, err := f.svc.ReserveStock(ctx, cause(id), o); err != nil {
				b.Fatal(err)
			}
			if _, err := f.svc.DeductStock(ctx, cause(id)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
	for _, sku := range skus {
		f.levels(b, sku) // the invariant still holds
	}
}
