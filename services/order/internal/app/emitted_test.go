package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/services/order/internal/adapters"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

// Emitted (the relay's wake-up) is told exactly for the commits that wrote
// outbox rows: the order's own events, never a step it only records.
func TestEmittedIsToldOnlyForCommitsThatWriteTheOutbox(t *testing.T) {
	db := migratedDB(t)
	limits, err := app.NewStreamLimits(10, 10)
	if err != nil {
		t.Fatal(err)
	}
	watchers := app.NewWatchers(limits)
	var emitted, changed int
	clk := clock.NewManual(time.Now())
	r := &replica{watchers: watchers, clock: clk, repo: &readCountingRepo{Repository: adapters.NewOrderMySQLRepository(db, "order", clk.Now)}}
	r.app = app.New(app.Deps{Repo: r.repo, Encode: ports.Encode, Now: clk.Now,
		Changed: func(o *order.Order) { changed++; watchers.Publish(o) },
		Emitted: func() { emitted++ }}, 30*time.Second, watchers, nil)

	outboxRows := func() int {
		var n int
		if err := db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	step := func(what string, wantEmitted, wantRows int) {
		t.Helper()
		if emitted != wantEmitted || outboxRows() != wantRows {
			t.Fatalf("after %s: Emitted told %d times, %d outbox rows; want %d and %d", what, emitted, outboxRows(), wantEmitted, wantRows)
		}
	}
	o := r.create(t)
	step("CreateOrder", 1, 1)
	r.record(t, o.ID, "STOCK_RESERVED")
	r.record(t, o.ID, "PAYMENT_PROCESSED")
	r.record(t, o.ID, "INVENTORY_UPDATED")
	step("three recorded steps", 1, 1)
	if changed != 4 {
		t.Errorf("Changed told %d times, want 4 (watchers see every commit)", changed)
	}
	r.record(t, o.ID, order.EventShipmentCreated)
	step("SHIPMENT_CREATED (emits ORDER_COMPLETED)", 2, 2)

	cancelled := r.create(t)
	step("second CreateOrder", 3, 3)
	if _, err := r.app.CancelOrder.Handle(context.Background(), cancelled.ID, "changed my mind", "", ""); err != nil {
		t.Fatal(err)
	}
	step("CancelOrder", 4, 4)

	expiring := r.create(t)
	step("third CreateOrder", 5, 5)
	clk.Advance(time.Minute) // past the 30 s deadline
	if n, err := r.app.ExpireOrders.Handle(context.Background()); err != nil || n != 1 {
		t.Fatalf("ExpireOrders: %d, %v (want 1 of %s)", n, err, expiring.ID)
	}
	step("ExpireOrders", 6, 6)
	if n, err := r.app.ExpireOrders.Handle(context.Background()); err != nil || n != 0 {
		t.Fatalf("second ExpireOrders: %d, %v", n, err)
	}
	step("an empty sweep", 6, 6)
}
