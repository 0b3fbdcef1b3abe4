package adapters_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/services/order/internal/adapters"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// Every filter shape of ListOrders is served by an index in the list's
// order on MariaDB: EXPLAIN shows an index range or scan and no filesort, on
// a table large enough (3,000 orders of 30 customers, all statuses) for the
// optimizer to prefer the index over reading the table.
func TestListQueriesUseAnIndexInListOrder(t *testing.T) {
	_, db := newRepo(t)
	ctx := context.Background()
	// Rows straight from MariaDB's sequence engine: the plan depends on the
	// table's shape, not on how the rows were written.
	_, err := db.ExecContext(ctx, `INSERT INTO orders (id, customer_id, status, currency, total_minor, ship_name, ship_line1,
		ship_city, ship_country_code, payment_token, cancel_reason, deadline, created_at, updated_at)
		SELECT CONCAT('00000000-0000-7000-8000-', LPAD(seq, 12, '0')),
		       CONCAT('00000000-0000-7000-9000-', LPAD(seq MOD 30, 12, '0')),
		       ELT(seq MOD 3 + 1, 'PENDING', 'COMPLETED', 'CANCELLED'), 'EUR', 100, 'Ada', 'Main St 1', 'Berlin', 'DE', 'tok_visa',
		       IF(seq MOD 3 = 2, ELT(seq MOD 5 + 1, 'OUT_OF_STOCK', 'PAYMENT_FAILED', 'SHIPMENT_FAILED', 'CUSTOMER_REQUESTED', 'TIMEOUT'), NULL),
		       '2026-12-01', TIMESTAMPADD(SECOND, seq, '2026-11-01'), TIMESTAMPADD(SECOND, seq, '2026-11-01')
		FROM seq_1_to_3000`)
	if err != nil {
		t.Fatalf("fill orders: %v", err)
	}
	if _, err := db.ExecContext(ctx, "ANALYZE TABLE orders"); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 1, 0, 20, 0, 0, time.UTC)
	cursor := &app.Cursor{CreatedAt: from.Add(10 * time.Minute), ID: "00000000-0000-7000-8000-000000001800"}
	for _, tc := range []struct {
		name   string
		filter app.ListFilter
		after  *app.Cursor
	}{
		{"everyone", app.ListFilter{}, nil},
		{"everyone, next page", app.ListFilter{}, cursor},
		{"by status", app.ListFilter{Status: order.StatusPending}, cursor},
		{"by reason (status implied)", app.ListFilter{Status: order.StatusCancelled, CancelReason: order.ReasonTimeout}, nil},
		{"by time range", app.ListFilter{CreatedFrom: from, CreatedBefore: from.Add(time.Hour)}, nil},
		{"by status and time", app.ListFilter{Status: order.StatusCompleted, CreatedFrom: from}, cursor},
		{"a customer's", app.ListFilter{CustomerID: testenv.IDFor("c")}, cursor},
		{"a customer's by status", app.ListFilter{CustomerID: "00000000-0000-7000-9000-000000000007", Status: order.StatusPending}, nil},
	} {
		q, args := adapters.ListQuery(tc.filter, tc.after, app.DefaultPageSize+1)
		plan := explain(t, db, q, args)
		t.Logf("%s: %s", tc.name, plan)
		if strings.Contains(plan, "filesort") || strings.Contains(plan, "type=ALL") || strings.Contains(plan, "key=NULL") {
			t.Errorf("%s: plan %s\nreads the table or sorts: no index serves it", tc.name, plan)
		}
	}
}

// explain is EXPLAIN's row for the orders table as "type=… key=… extra=…".
func explain(t *testing.T, db *sql.DB, q string, args []any) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN "+q, args...)
	if err != nil {
		t.Fatalf("EXPLAIN %s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var plans []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		get := func(name string) string {
			for i, c := range cols {
				if strings.EqualFold(c, name) {
					if !vals[i].Valid {
						return "NULL"
					}
					return vals[i].String
				}
			}
			return "?"
		}
		plans = append(plans, fmt.Sprintf("type=%s key=%s rows=%s extra=%s", get("type"), get("key"), get("rows"), get("Extra")))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(plans) != 1 {
		t.Fatalf("EXPLAIN %s: %d rows, want 1 (one table)", q, len(plans))
	}
	return plans[0]
}
