package adapters_test

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkCountPending is the backlog's refresh query with N orders
// PENDING and as many ended (what admission would pay per CreateOrder if it
// counted every time; it counts every ORDER_PENDING_COUNT_INTERVAL instead).
//
//	go test -run '^$' -bench CountPending ./services/order/internal/adapters/
func BenchmarkCountPending(b *testing.B) {
	for _, pending := range []int{500, 5000, 50000} {
		b.Run(fmt.Sprintf("pending=%d", pending), func(b *testing.B) {
			repo, db := newRepo(b)
			ctx := context.Background()
			// Rows straight from MariaDB's sequence engine: the count reads
			// only idx_orders_status_deadline, so the other columns are filler.
			for _, status := range []string{"PENDING", "COMPLETED"} {
				if _, err := db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO orders (id, customer_id, status, currency, total_minor,
					ship_name, ship_line1, ship_city, ship_country_code, payment_token, cancel_reason, deadline, created_at, updated_at)
					SELECT UUID(), UUID(), '%s', 'EUR', 100, 'n', 'l', 'c', 'DE', 'tok', NULL,
						NOW(6) + INTERVAL seq SECOND, NOW(6), NOW(6) FROM seq_1_to_%d`, status, pending)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				n, err := repo.CountPending(ctx)
				if err != nil || n != pending {
					b.Fatalf("CountPending = %d, %v; want %d", n, err, pending)
				}
			}
		})
	}
}
