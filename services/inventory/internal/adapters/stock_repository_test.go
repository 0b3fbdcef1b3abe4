package adapters_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/services/inventory/internal/adapters"
	"github.com/sagasuite/sagasuite/services/inventory/internal/app"
	"github.com/sagasuite/sagasuite/services/inventory/internal/domain/stock"
	"github.com/sagasuite/sagasuite/services/inventory/internal/ports"
	"github.com/sagasuite/sagasuite/services/inventory/migrations"
)

var start = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

type fixture struct {
	db   *sql.DB
	repo *adapters.MySQLRepository
	svc  *app.Service
	clk  *clock.Manual
}

// newFixture migrates a fresh database on the real MariaDB and builds the
// repository (with the real event encoder) and the app over it.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	_, dsn := testenv.MySQLDatabase(t)
	ctx := context.Background()
	db, err := adapters.Open(ctx, dsn, sqlstore.Options{MaxOpenConns: 32})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := migrations.Apply(ctx, db); err != nil {
		t.Fatal(err)
	}
	repo := adapters.NewMySQLRepository(db, "inventory", ports.EncodeEvent, nil)
	clk := clock.NewManual(start)
	return &fixture{db: db, repo: repo, svc: app.New(repo, clk), clk: clk}
}

func (f *fixture) product(t testing.TB, sku string, price int64, units int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.svc.UpsertProduct(ctx, sku, "product "+sku, stock.Money{AmountMinor: price, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if units > 0 {
		if _, err := f.svc.AddStock(ctx, events.NewID(), sku, units); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) levels(t testing.TB, sku string) stock.Levels {
	t.Helper()
	l, err := f.svc.GetStock(context.Background(), sku)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Balanced() {
		t.Fatalf("invariant broken for %s: %+v", sku, l)
	}
	return l
}

func assertCounts(t testing.TB, l stock.Levels, available, reserved, sold, added, restored int64) {
	t.Helper()
	got := [5]int64{l.Available, l.Reserved, l.Sold, l.Added, l.Restored}
	if want := [5]int64{available, reserved, sold, added, restored}; got != want {
		t.Fatalf("%s: available/reserved/sold/added/restored = %v, want %v", l.SKU, got, want)
	}
}

func (f *fixture) status(t *testing.T, orderID string) string {
	t.Helper()
	var s string
	err := f.db.QueryRow("SELECT status FROM reservations WHERE order_id = ?", orderID).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// outboxTypes lists the types of the events written for an order, in order.
func (f *fixture) outboxTypes(t *testing.T, orderID string) []string {
	t.Helper()
	rows, err := f.db.Query("SELECT headers FROM outbox WHERE msg_key = ? ORDER BY id", orderID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var types []string
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var h map[string]string
		if err := json.Unmarshal(raw, &h); err != nil {
			t.Fatal(err)
		}
		types = append(types, h["type"])
	}
	return types
}

func cause(orderID string) app.Cause {
	return app.Cause{EventID: events.NewID(), OrderID: orderID, CustomerID: testenv.IDFor("customer")}
}

func orderOf(lines ...stock.Line) stock.Order {
	return stock.Order{Lines: lines, Total: stock.Money{AmountMinor: 1, Currency: "EUR"}, PaymentToken: "tok",
		ShippingAddress: stock.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", CountryCode: "DE"}}
}

func TestMigrationsApplyTwice(t *testing.T) {
	f := newFixture(t)
	if err := migrations.Apply(context.Background(), f.db); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
}

func TestCatalogUpsertAddGetList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v, err := f.svc.UpsertProduct(ctx, "SKU-1", "Widget", stock.Money{AmountMinor: 1999, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Product.Name != "Widget" || v.Product.UnitPrice.AmountMinor != 1999 || !v.Product.CreatedAt.Equal(start) {
		t.Fatalf("created %+v", v.Product)
	}
	assertCounts(t, v.Levels, 0, 0, 0, 0, 0)

	req := events.NewID()
	for range 3 { // a retried request adds once
		l, err := f.svc.AddStock(ctx, req, "SKU-1", 7)
		if err != nil {
			t.Fatal(err)
		}
		assertCounts(t, l, 7, 0, 0, 7, 0)
	}
	if _, err := f.svc.AddStock(ctx, req, "SKU-1", 8); !errors.Is(err, stock.ErrRequestConflict) {
		t.Fatalf("reused request id with another quantity: %v", err)
	}
	if _, err := f.svc.AddStock(ctx, events.NewID(), "NOPE", 1); !errors.Is(err, stock.ErrProductNotFound) {
		t.Fatalf("unknown sku: %v", err)
	}
	if _, err := f.svc.GetStock(ctx, "NOPE"); !errors.Is(err, stock.ErrProductNotFound) {
		t.Fatalf("get unknown sku: %v", err)
	}

	f.clk.Advance(time.Hour)
	v, err = f.svc.UpsertProduct(ctx, "SKU-1", "Widget 2", stock.Money{AmountMinor: 2500, Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Product.Name != "Widget 2" || v.Product.UnitPrice != (stock.Money{AmountMinor: 2500, Currency: "USD"}) ||
		!v.Product.CreatedAt.Equal(start) || !v.Product.UpdatedAt.Equal(start.Add(time.Hour)) {
		t.Fatalf("updated %+v", v.Product)
	}
	assertCounts(t, v.Levels, 7, 0, 0, 7, 0) // an update keeps the stock

	for _, sku := range []string{"SKU-4", "SKU-2", "SKU-5", "SKU-3"} {
		f.product(t, sku, 1, 0)
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		page, more, err := f.svc.ListProducts(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page {
			got = append(got, p.Product.SKU)
		}
		if !more {
			break
		}
		after = page[len(page)-1].Product.SKU
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if want := []string{"SKU-1", "SKU-2", "SKU-3", "SKU-4", "SKU-5"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
}

func TestConcurrentCopiesOfOneAddStockAddOnce(t *testing.T) {
	f := newFixture(t)
	f.product(t, "SKU-1", 100, 0)
	req := events.NewID()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			if _, err := f.svc.AddStock(context.Background(), req, "SKU-1", 5); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assertCounts(t, f.levels(t, "SKU-1"), 5, 0, 0, 5, 0)
}

// The oversell race: many orders for the last units at once. Exactly as many
// succeed as there are units, stock never goes negative, nothing is lost.
func TestConcurrentReservationsNeverOversell(t *testing.T) {
	f := newFixture(t)
	f.product(t, "LAST", 100, 10)
	const orders = 50
	ids := make([]string, orders)
	var wg sync.WaitGroup
	errs := make(chan error, orders)
	for i := range orders {
		ids[i] = events.NewID()
		wg.Go(func() {
			if _, err := f.svc.ReserveStock(context.Background(), cause(ids[i]), orderOf(stock.Line{SKU: "LAST", Quantity: 1, UnitPriceMinor: 100})); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	count := map[string]int{}
	events := map[string]int{}
	for _, id := range ids {
		count[f.status(t, id)]++
		for _, typ := range f.outboxTypes(t, id) {
			events[typ]++
		}
	}
	if count["RESERVED"] != 10 || count["REJECTED"] != orders-10 {
		t.Fatalf("statuses %v, want 10 RESERVED and %d REJECTED", count, orders-10)
	}
	if events["STOCK_RESERVED"] != 10 || events["OUT_OF_STOCK"] != orders-10 {
		t.Fatalf("events %v", events)
	}
	assertCounts(t, f.levels(t, "LAST"), 0, 10, 0, 10, 0)
}

// Orders locking the same SKUs in opposite line order all finish (sorted
// locking), and mixed with payments and cancels the invariant holds.
func TestConcurrentMultiLineSagasKeepTheInvariant(t *testing.T) {
	f := newFixture(t)
	f.product(t, "SKU-A", 100, 1000)
	f.product(t, "SKU-B", 200, 1000)
	ctx := context.Background()
	const orders = 40
	var wg sync.WaitGroup
	errs := make(chan error, orders)
	for i := range orders {
		wg.Go(func() {
			id := events.NewID()
			lines := []stock.Line{{SKU: "SKU-A", Quantity: 2, UnitPriceMinor: 100}, {SKU: "SKU-B", Quantity: 3, UnitPriceMinor: 200}}
			if i%2 == 1 {
				lines[0], lines[1] = lines[1], lines[0]
			}
			if _, err := f.svc.ReserveStock(ctx, cause(id), orderOf(lines...)); err != nil {
				errs <- err
				return
			}
			var err error
			switch i % 4 {
			case 0:
				_, err = f.svc.DeductStock(ctx, cause(id))
			case 1:
				_, err = f.svc.ReleaseStock(ctx, cause(id))
			case 2:
				if _, err = f.svc.DeductStock(ctx, cause(id)); err == nil {
					_, err = f.svc.RestoreShippedStock(ctx, cause(id))
				}
			case 3:
				_, err = f.svc.CancelReservation(ctx, cause(id))
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// 10 deducted, 10 released, 10 deducted+restored, 10 released by cancel.
	assertCounts(t, f.levels(t, "SKU-A"), 1000-10*2, 0, 20*2, 1000, 10*2)
	assertCounts(t, f.levels(t, "SKU-B"), 1000-10*3, 0, 20*3, 1000, 10*3)
}

// The inbox makes an event's effect happen once, also for concurrent copies.
func TestConcurrentCopiesOfOneEventApplyOnce(t *testing.T) {
	f := newFixture(t)
	f.product(t, "SKU-A", 100, 5)
	orderID := events.NewID()
	c := cause(orderID)
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied := 0
	for range 10 {
		wg.Go(func() {
			ok, err := f.svc.ReserveStock(context.Background(), c, orderOf(stock.Line{SKU: "SKU-A", Quantity: 2, UnitPriceMinor: 100}))
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				applied++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if applied != 1 {
		t.Fatalf("applied %d times", applied)
	}
	assertCounts(t, f.levels(t, "SKU-A"), 3, 2, 0, 5, 0)
	if got := f.outboxTypes(t, orderID); !reflect.DeepEqual(got, []string{"STOCK_RESERVED"}) {
		t.Fatalf("outbox %v", got)
	}
}

func TestSagaPathsThroughTheStore(t *testing.T) {
	ctx := context.Background()
	line := func(sku string, q int64) stock.Line { return stock.Line{SKU: sku, Quantity: q, UnitPriceMinor: 100} }
	type step func(*fixture, string) error
	var (
		deduct   step = func(f *fixture, id string) error { _, err := f.svc.DeductStock(ctx, cause(id)); return err }
		release  step = func(f *fixture, id string) error { _, err := f.svc.ReleaseStock(ctx, cause(id)); return err }
		cancel   step = func(f *fixture, id string) error { _, err := f.svc.CancelReservation(ctx, cause(id)); return err }
		shipFail step = func(f *fixture, id string) error { _, err := f.svc.RestoreShippedStock(ctx, cause(id)); return err }
	)
	tests := []struct {
		name       string
		before     []step // before ORDER_CREATED
		lines      []stock.Line
		after      []step
		wantStatus string
		wantTypes  []string
		wantA      [5]int64 // available, reserved, sold, added, restored
	}{
		{"reserve then deduct", nil, []stock.Line{line("SKU-A", 3)}, []step{deduct}, "DEDUCTED",
			[]string{"STOCK_RESERVED", "INVENTORY_UPDATED"}, [5]int64{7, 0, 3, 10, 0}},
		{"payment failed releases", nil, []stock.Line{line("SKU-A", 3)}, []step{release}, "RELEASED",
			[]string{"STOCK_RESERVED", "STOCK_RESTORED"}, [5]int64{10, 0, 0, 10, 0}},
		{"cancel after deduction restores", nil, []stock.Line{line("SKU-A", 3)}, []step{deduct, cancel}, "RESTORED",
			[]string{"STOCK_RESERVED", "INVENTORY_UPDATED", "STOCK_RESTORED"}, [5]int64{10, 0, 3, 10, 3}},
		{"shipment failed restores, a later cancel does nothing", nil, []stock.Line{line("SKU-A", 3)}, []step{deduct, shipFail, cancel, release, deduct}, "RESTORED",
			[]string{"STOCK_RESERVED", "INVENTORY_UPDATED", "STOCK_RESTORED"}, [5]int64{10, 0, 3, 10, 3}},
		{"all or nothing: the second line fails, the first holds nothing", nil, []stock.Line{line("SKU-A", 3), line("SKU-B", 6)}, []step{cancel}, "REJECTED",
			[]string{"OUT_OF_STOCK"}, [5]int64{10, 0, 0, 10, 0}},
		{"cancel before ORDER_CREATED leaves a tombstone; the late order reserves nothing", []step{cancel}, []stock.Line{line("SKU-A", 3)}, []step{deduct}, "CANCELLED",
			nil, [5]int64{10, 0, 0, 10, 0}},
		{"events for an unknown order do nothing", []step{deduct, release, shipFail}, []stock.Line{line("SKU-A", 1)}, nil, "RESERVED",
			[]string{"STOCK_RESERVED"}, [5]int64{9, 1, 0, 10, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.product(t, "SKU-A", 100, 10)
			f.product(t, "SKU-B", 100, 5)
			id := events.NewID()
			for _, s := range tt.before {
				if err := s(f, id); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.svc.ReserveStock(ctx, cause(id), orderOf(tt.lines...)); err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.after {
				if err := s(f, id); err != nil {
					t.Fatal(err)
				}
			}
			if got := f.status(t, id); got != tt.wantStatus {
				t.Fatalf("status %q, want %q", got, tt.wantStatus)
			}
			if got := f.outboxTypes(t, id); !reflect.DeepEqual(got, tt.wantTypes) {
				t.Fatalf("events %v, want %v", got, tt.wantTypes)
			}
			w := tt.wantA
			assertCounts(t, f.levels(t, "SKU-A"), w[0], w[1], w[2], w[3], w[4])
			assertCounts(t, f.levels(t, "SKU-B"), 5, 0, 0, 5, 0)
		})
	}
}

// The database itself refuses a row that breaks the invariant or goes negative.
func TestStoreRejectsUnbalancedStock(t *testing.T) {
	f := newFixture(t)
	f.product(t, "SKU-A", 100, 3)
	for _, q := range []string{
		"UPDATE stock SET available = available - 4, reserved = reserved + 4 WHERE sku = 'SKU-A'",
		"UPDATE stock SET available = available + 1 WHERE sku = 'SKU-A'",
	} {
		if _, err := f.db.Exec(q); err == nil {
			t.Errorf("%s: accepted", q)
		}
	}
	assertCounts(t, f.levels(t, "SKU-A"), 3, 0, 0, 3, 0)

}
