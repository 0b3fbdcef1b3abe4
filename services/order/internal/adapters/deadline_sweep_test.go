package adapters_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/adapters"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

// sweepCounter is the real repository, counting the deadline sweep's
// batches (each one transaction) and the orders each locked.
type sweepCounter struct {
	*adapters.OrderMySQLRepository
	mu      sync.Mutex
	batches []int
}

func (c *sweepCounter) UpdatePastDeadline(ctx context.Context, now time.Time, limit int, change app.ChangeFunc) ([]*order.Order, int, error) {
	changed, found, err := c.OrderMySQLRepository.UpdatePastDeadline(ctx, now, limit, change)
	c.mu.Lock()
	c.batches = append(c.batches, found)
	c.mu.Unlock()
	return changed, found, err
}

// A backlog of expired orders — more than two batches — is cancelled by one
// sweep in a few transactions, driven by the injected clock: every expired
// order ends CANCELLED (TIMEOUT) with its ORDER_CANCELLED in the outbox and
// step history; an order whose deadline has not passed stays PENDING; a
// second sweep finds nothing.
func TestDeadlineSweepCancelsExpiredOrdersInBatches(t *testing.T) {
	const expired = 450 // the batch is 200: batches of 200, 200, 50
	repo, db := newRepo(t)
	clk := clock.NewManual(t0)
	counter := &sweepCounter{OrderMySQLRepository: repo}
	changed := 0 // CANCELLED/TIMEOUT snapshots the sweep hands its watchers
	a := app.New(app.Deps{Repo: counter, Encode: ports.Encode, Now: clk.Now, Changed: func(o *order.Order) {
		if o.Status == order.StatusCancelled && o.CancelReason == order.ReasonTimeout && len(o.Steps) == 2 {
			changed++
		}
	}}, 30*time.Second, app.NewWatchers(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	create := func(i int) *order.Order {
		o, err := a.CreateOrder.Handle(ctx, order.Draft{
			CustomerID: testenv.IDFor(fmt.Sprintf("sweep customer %d", i%7)), RequestID: testenv.IDFor(fmt.Sprintf("sweep request %d", i)),
			Lines:    []order.Line{{SKU: "BOOK-1", Quantity: 1, UnitPriceMinor: 1250}},
			Currency: "EUR", PaymentToken: "tok_visa",
			ShippingAddress: order.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"},
		})
		if err != nil {
			t.Fatalf("create order %d: %v", i, err)
		}
		return o
	}
	for i := range expired {
		create(i)
		clk.Advance(time.Millisecond) // distinct deadlines, so the batches' order is the deadlines'
	}
	clk.Advance(20 * time.Second)
	young := create(expired)                       // its deadline is 20 s after the others'
	clk.Advance(10*time.Second + time.Millisecond) // every deadline but young's has passed

	began := time.Now()
	n, err := a.ExpireOrders.Handle(ctx)
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	t.Logf("one sweep cancelled %d expired orders in %s (batches %v)", n, time.Since(began).Round(time.Millisecond), counter.batches)
	if n != expired || changed != expired {
		t.Errorf("sweep cancelled %d orders (%d CANCELLED/TIMEOUT snapshots told), want %d", n, changed, expired)
	}
	if fmt.Sprint(counter.batches) != "[200 200 50]" {
		t.Errorf("sweep batches locked %v orders, want [200 200 50]: one transaction per batch", counter.batches)
	}
	if got := count(t, db, "SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED' AND cancel_reason = 'TIMEOUT'"); got != expired {
		t.Errorf("%d orders CANCELLED/TIMEOUT, want %d", got, expired)
	}
	if got := count(t, db, "SELECT COUNT(*) FROM orders WHERE status = 'PENDING'"); got != 1 {
		t.Errorf("%d orders PENDING, want 1 (the young one)", got)
	}
	// Every cancellation has its step, and that step's event is in the outbox.
	if got := count(t, db, `SELECT COUNT(*) FROM order_steps s JOIN outbox o ON o.event_id = s.event_id
		WHERE s.event_type = 'ORDER_CANCELLED'`); got != expired {
		t.Errorf("%d ORDER_CANCELLED steps with their outbox row, want %d", got, expired)
	}
	if got := count(t, db, "SELECT COUNT(*) FROM outbox"); got != 2*expired+1 {
		t.Errorf("%d outbox rows, want %d (ORDER_CREATED of all, ORDER_CANCELLED of the expired)", got, 2*expired+1)
	}
	y, err := repo.Get(ctx, young.ID)
	if err != nil || y.Status != order.StatusPending {
		t.Errorf("young order = %v, %v; want PENDING", y, err)
	}

	counter.batches = nil
	if n, err := a.ExpireOrders.Handle(ctx); n != 0 || err != nil || fmt.Sprint(counter.batches) != "[0]" {
		t.Errorf("second sweep cancelled %d (%v), batches %v; want 0 in one empty batch", n, err, counter.batches)
	}
	clk.Advance(20 * time.Second)
	if n, err := a.ExpireOrders.Handle(ctx); n != 1 || err != nil {
		t.Errorf("sweep after the young order's deadline cancelled %d (%v), want 1", n, err)
	}
}

// pausingSweep is the real repository whose first sweep batch stops inside
// its transaction — rows locked, nothing committed — until released.
type pausingSweep struct {
	*adapters.OrderMySQLRepository
	once             sync.Once
	holding, release chan struct{}
}

func (p *pausingSweep) UpdatePastDeadline(ctx context.Context, now time.Time, limit int, change app.ChangeFunc) ([]*order.Order, int, error) {
	return p.OrderMySQLRepository.UpdatePastDeadline(ctx, now, limit, func(o *order.Order) ([]*eventsv1.Envelope, error) {
		p.once.Do(func() {
			close(p.holding)
			<-p.release
		})
		return change(o)
	})
}

// Two replicas sweep one database at once. Replica A's first batch (the
// 200 oldest expired orders) stays locked mid-transaction while replica B
// sweeps: B neither waits for A's rows nor touches them — it cancels all the
// others — and once A commits, every expired order is cancelled exactly
// once (one ORDER_CANCELLED step and outbox row each).
func TestTwoReplicasSweepDisjointBatches(t *testing.T) {
	const expired = 650
	dbA, dsn := testenv.MySQLDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := adapters.Migrate(ctx, dbA); err != nil {
		t.Fatal(err)
	}
	dbB, err := sqlstore.Open(ctx, dsn, sqlstore.Options{MaxOpenConns: 4}) // the other process's pool
	if err != nil {
		t.Fatal(err)
	}
	defer dbB.Close()
	clk := clock.NewManual(t0)
	pausing := &pausingSweep{OrderMySQLRepository: adapters.NewOrderMySQLRepository(dbA, "order", clk.Now),
		holding: make(chan struct{}), release: make(chan struct{})}
	a := app.New(app.Deps{Repo: pausing, Encode: ports.Encode, Now: clk.Now}, 30*time.Second, app.NewWatchers(), nil)
	b := app.New(app.Deps{Repo: adapters.NewOrderMySQLRepository(dbB, "order", clk.Now), Encode: ports.Encode, Now: clk.Now},
		30*time.Second, app.NewWatchers(), nil)
	for i := range expired {
		creator := a
		if i%2 == 1 {
			creator = b
		}
		if _, err := creator.CreateOrder.Handle(ctx, order.Draft{CustomerID: testenv.IDFor(fmt.Sprintf("two sweeps %d", i%5)),
			Lines: []order.Line{{SKU: "BOOK-1", Quantity: 1, UnitPriceMinor: 1250}}, Currency: "EUR", PaymentToken: "tok_visa",
			ShippingAddress: order.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", CountryCode: "DE"}}); err != nil {
			t.Fatalf("create order %d: %v", i, err)
		}
		clk.Advance(time.Millisecond)
	}
	clk.Advance(31 * time.Second)

	type result struct {
		n   int
		err error
	}
	doneA := make(chan result, 1)
	go func() {
		n, err := a.ExpireOrders.Handle(ctx)
		doneA <- result{n, err}
	}()
	select {
	case <-pausing.holding:
	case r := <-doneA:
		t.Fatalf("replica A's sweep ended (%d, %v) before holding its batch", r.n, r.err)
	case <-ctx.Done():
		t.Fatal("replica A's sweep did not lock a batch")
	}
	nB, errB := b.ExpireOrders.Handle(ctx)
	close(pausing.release)
	if errB != nil || nB != expired-200 {
		t.Errorf("replica B cancelled %d (%v) while A held its batch, want the %d A did not hold", nB, errB, expired-200)
	}
	var rA result
	select {
	case rA = <-doneA:
	case <-ctx.Done():
		t.Fatal("replica A's sweep did not end")
	}
	if rA.err != nil || rA.n != 200 {
		t.Errorf("replica A cancelled %d (%v), want its batch of 200", rA.n, rA.err)
	}
	if got := count(t, dbA, "SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED' AND cancel_reason = 'TIMEOUT'"); got != expired {
		t.Errorf("%d orders CANCELLED/TIMEOUT, want %d", got, expired)
	}
	if got := count(t, dbA, `SELECT COUNT(*) FROM (SELECT order_id FROM order_steps WHERE event_type = 'ORDER_CANCELLED'
		GROUP BY order_id HAVING COUNT(*) = 1) once`); got != expired {
		t.Errorf("%d orders with exactly one ORDER_CANCELLED step, want %d", got, expired)
	}
	if got := count(t, dbA, "SELECT COUNT(*) FROM order_steps WHERE event_type = 'ORDER_CANCELLED'"); got != expired {
		t.Errorf("%d ORDER_CANCELLED steps, want %d", got, expired)
	}
	if got := count(t, dbA, "SELECT COUNT(*) FROM outbox"); got != 2*expired {
		t.Errorf("%d outbox rows, want %d (ORDER_CREATED and one ORDER_CANCELLED each)", got, 2*expired)
	}
}
