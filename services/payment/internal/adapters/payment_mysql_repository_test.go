package adapters_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/payment/internal/adapters"
	"github.com/sagasuite/sagasuite/services/payment/internal/app"
	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC)

func newRepo(t *testing.T) (*adapters.PaymentMySQLRepository, *sql.DB) {
	t.Helper()
	db, _ := testenv.MySQLDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := adapters.Migrate(ctx, db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	// Migrations are idempotent: a second start changes nothing.
	if err := adapters.Migrate(ctx, db); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	return adapters.NewPaymentMySQLRepository(db, "payment", func() time.Time { return t0 }), db
}

func captured(orderID, customerID string, created time.Time) *payment.Payment {
	return &payment.Payment{
		OrderID: orderID, PaymentID: app.PaymentIDFor(orderID), CustomerID: customerID,
		Amount: payment.Money{AmountMinor: 2500, Currency: "EUR"}, Status: payment.StatusCaptured,
		ChargeID: "ch_" + orderID[:8], CausationID: testenv.IDFor("reserved/" + orderID), CreatedAt: created, UpdatedAt: created,
	}
}

// processed is an envelope to store with a change (what the outbox gets).
func processed(t *testing.T, p *payment.Payment, cause string) *eventsv1.Envelope {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: p.OrderID, CustomerID: p.CustomerID, Producer: "payment", CausationID: cause, OccurredAt: t0},
		&eventsv1.PaymentProcessed{PaymentId: p.PaymentID, Amount: &commonv1.Money{AmountMinor: p.Amount.AmountMinor, Currency: p.Amount.Currency}})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func outboxCount(t *testing.T, db *sql.DB, orderID string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM outbox WHERE msg_key = ?", orderID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestUpdateStoresReadsBackAndIsExactlyOncePerEvent(t *testing.T) {
	repo, db := newRepo(t)
	ctx := context.Background()
	orderID, customerID := testenv.IDFor(t.Name()+"/order"), testenv.IDFor(t.Name()+"/customer")
	want := captured(orderID, customerID, t0)
	eventID := want.CausationID

	calls := 0
	charge := func(existing *payment.Payment) (*payment.Payment, []*eventsv1.Envelope, error) {
		calls++
		if existing != nil {
			t.Errorf("first change saw %+v, want no payment", existing)
		}
		return want, []*eventsv1.Envelope{processed(t, want, eventID)}, nil
	}
	applied, err := repo.Update(ctx, orderID, eventID, charge)
	if err != nil || !applied {
		t.Fatalf("Update = %v, %v; want applied", applied, err)
	}
	got, err := repo.Get(ctx, orderID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %+v\nwant        %+v", got, want)
	}
	if n := outboxCount(t, db, orderID); n != 1 {
		t.Fatalf("outbox rows = %d, want 1", n)
	}

	// The same event again: the change does not run, nothing is written.
	applied, err = repo.Update(ctx, orderID, eventID, charge)
	if err != nil || applied || calls != 1 {
		t.Fatalf("redelivery: applied=%v err=%v change ran %d times; want not applied, once", applied, err, calls)
	}
	if n := outboxCount(t, db, orderID); n != 1 {
		t.Fatalf("outbox rows after redelivery = %d, want 1", n)
	}

	// A refund: status moves, the refund row appears and reads back.
	refundEvent := testenv.IDFor(t.Name() + "/cancel")
	var refunded *payment.Payment
	applied, err = repo.Update(ctx, orderID, refundEvent, func(existing *payment.Payment) (*payment.Payment, []*eventsv1.Envelope, error) {
		if !reflect.DeepEqual(existing, want) {
			t.Errorf("locked read %+v, want %+v", existing, want)
		}
		c := *existing
		c.Status, c.UpdatedAt = payment.StatusRefunded, t0.Add(time.Second)
		c.Refund = &payment.Refund{RefundID: app.RefundIDFor(orderID), Amount: c.Amount, Reason: payment.RefundOrderCancelled,
			GatewayRefundID: "re_1", CausationID: refundEvent, CreatedAt: t0.Add(time.Second)}
		refunded = &c
		return &c, nil, nil
	})
	if err != nil || !applied {
		t.Fatalf("refund Update = %v, %v", applied, err)
	}
	if got, _ := repo.Get(ctx, orderID); !reflect.DeepEqual(got, refunded) {
		t.Fatalf("refunded read back %+v (refund %+v)\nwant %+v (refund %+v)", got, got.Refund, refunded, refunded.Refund)
	}

	// The schema refuses a second refund of the order, whatever the code does.
	_, err = db.Exec(`INSERT INTO refunds (refund_id, order_id, amount_minor, currency, reason, gateway_refund_id, causation_id, created_at)
		VALUES (?, ?, 1, 'EUR', 'SHIPMENT_FAILED', 're_2', ?, ?)`, testenv.IDFor("other refund"), orderID, refundEvent, t0)
	if !sqlstore.IsDuplicateKey(err) {
		t.Fatalf("second refund row: err = %v, want a duplicate key", err)
	}
}

func TestAFailedChangeLeavesNothingAndCanBeRedelivered(t *testing.T) {
	repo, db := newRepo(t)
	ctx := context.Background()
	orderID := testenv.IDFor(t.Name() + "/order")
	p := captured(orderID, testenv.IDFor(t.Name()+"/customer"), t0)
	boom := errors.New("gateway down")
	_, err := repo.Update(ctx, orderID, p.CausationID, func(*payment.Payment) (*payment.Payment, []*eventsv1.Envelope, error) {
		return p, []*eventsv1.Envelope{processed(t, p, p.CausationID)}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update err = %v, want %v", err, boom)
	}
	if _, err := repo.Get(ctx, orderID); !errors.Is(err, payment.ErrNotFound) {
		t.Fatalf("Get after a failed change: %v, want ErrNotFound", err)
	}
	if n := outboxCount(t, db, orderID); n != 0 {
		t.Fatalf("outbox rows after a failed change = %d", n)
	}
	applied, err := repo.Update(ctx, orderID, p.CausationID, func(*payment.Payment) (*payment.Payment, []*eventsv1.Envelope, error) {
		return p, nil, nil
	})
	if err != nil || !applied {
		t.Fatalf("redelivery after a failure: applied=%v err=%v, want applied", applied, err)
	}
}

// Many copies of one event at once (redeliveries racing on replicas): the
// change takes effect exactly once.
func TestConcurrentCopiesOfAnEventApplyOnce(t *testing.T) {
	repo, db := newRepo(t)
	orderID := testenv.IDFor(t.Name() + "/order")
	p := captured(orderID, testenv.IDFor(t.Name()+"/customer"), t0)
	const copies = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied int
	)
	errs := make(chan error, copies)
	for range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := repo.Update(context.Background(), orderID, p.CausationID, func(existing *payment.Payment) (*payment.Payment, []*eventsv1.Envelope, error) {
				if existing != nil {
					return nil, nil, nil
				}
				return p, []*eventsv1.Envelope{processed(t, p, p.CausationID)}, nil
			})
			errs <- err
			if ok {
				mu.Lock()
				applied++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent copy: %v", err)
		}
	}
	if applied != 1 {
		t.Fatalf("%d copies applied, want 1", applied)
	}
	if n := outboxCount(t, db, orderID); n != 1 {
		t.Fatalf("outbox rows = %d, want 1", n)
	}
}

// Different events of one order with no row yet (STOCK_RESERVED racing
// ORDER_CANCELLED): exactly one creates the row, every other one sees it.
func TestConcurrentFirstWritersOfAnOrderSerialize(t *testing.T) {
	repo, _ := newRepo(t)
	orderID, customerID := testenv.IDFor(t.Name()+"/order"), testenv.IDFor(t.Name()+"/customer")
	const writers = 12
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []string // event ids whose change created the row (last run of each)
	)
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			eventID := testenv.IDFor(fmt.Sprintf("%s/event-%d", t.Name(), i))
			createdHere := false
			_, err := repo.Update(context.Background(), orderID, eventID, func(existing *payment.Payment) (*payment.Payment, []*eventsv1.Envelope, error) {
				createdHere = existing == nil // a rerun after a deadlock decides again
				if existing != nil {
					return nil, nil, nil
				}
				return &payment.Payment{OrderID: orderID, CustomerID: customerID, Status: payment.StatusCancelled,
					CausationID: eventID, CreatedAt: t0, UpdatedAt: t0}, nil, nil
			})
			errs <- err
			if err == nil && createdHere {
				mu.Lock()
				created = append(created, eventID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent writer: %v", err)
		}
	}
	if len(created) != 1 {
		t.Fatalf("%d writers created the row, want 1", len(created))
	}
	got, err := repo.Get(context.Background(), orderID)
	if err != nil || got.CausationID != created[0] {
		t.Fatalf("stored row %+v (%v), want the one created by %s", got, err, created[0])
	}
}

func TestListByCustomerNewestFirstPagedWithoutTombstones(t *testing.T) {
	repo, _ := newRepo(t)
	ctx := context.Background()
	customerID, other := testenv.IDFor(t.Name()+"/customer"), testenv.IDFor(t.Name()+"/other")
	var want []*payment.Payment // newest first
	for i := range 5 {
		orderID := testenv.IDFor(fmt.Sprintf("%s/order-%d", t.Name(), i))
		created := t0.Add(time.Duration(i%3) * time.Minute) // ties on created_at: order id breaks them
		p := captured(orderID, customerID, created)
		store(t, repo, p)
		want = append(want, p)
	}
	store(t, repo, captured(testenv.IDFor(t.Name()+"/others-order"), other, t0))
	store(t, repo, &payment.Payment{OrderID: testenv.IDFor(t.Name() + "/cancelled"), CustomerID: customerID,
		Status: payment.StatusCancelled, CausationID: testenv.IDFor("cancel"), CreatedAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Hour)})
	sortNewestFirst(want)

	var got []*payment.Payment
	var after *app.Cursor
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("paging does not end")
		}
		batch, err := repo.ListByCustomer(ctx, customerID, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		got = append(got, batch...)
		last := batch[len(batch)-1]
		after = &app.Cursor{CreatedAt: last.CreatedAt, ID: last.OrderID}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("listed %d payments:\n%s\nwant %d:\n%s", len(got), orderIDs(got), len(want), orderIDs(want))
	}
}

func store(t *testing.T, repo *adapters.PaymentMySQLRepository, p *payment.Payment) {
	t.Helper()
	if _, err := repo.Update(context.Background(), p.OrderID, p.CausationID+"-"+p.OrderID[:8], func(*payment.Payment) (*payment.Payment, []*eventsv1.Envelope, error) {
		return p, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func sortNewestFirst(ps []*payment.Payment) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && newer(ps[j], ps[j-1]); j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

func newer(a, b *payment.Payment) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.OrderID > b.OrderID
}

func orderIDs(ps []*payment.Payment) string {
	s := ""
	for _, p := range ps {
		s += fmt.Sprintf("  %s %s\n", p.CreatedAt.Format(time.TimeOnly), p.OrderID)
	}
	return s
}

// Intents round-trip (token, noted cancel, pending refund), keep their lease
// while live, and once it runs out each is claimed by exactly one of several
// concurrent sweepers; a decided record is never claimed.
func TestIntentsRoundTripAndExpiredOnesAreClaimedOnce(t *testing.T) {
	repo, _ := newRepo(t)
	repo.WithLease(3 * time.Second)
	ctx := context.Background()
	const n = 30
	pending := map[string]*payment.Payment{}
	for i := range n {
		orderID := testenv.IDFor(fmt.Sprintf("%s/%d", t.Name(), i))
		p := &payment.Payment{OrderID: orderID, PaymentID: app.PaymentIDFor(orderID), CustomerID: testenv.IDFor("customer"),
			Amount: payment.Money{AmountMinor: 100, Currency: "EUR"}, Status: payment.StatusChargePending, PaymentToken: "tok_visa",
			CausationID: testenv.IDFor("reserved/" + orderID), CreatedAt: t0, UpdatedAt: t0}
		switch i % 3 {
		case 1:
			p.CancelCausationID = testenv.IDFor("cancel/" + orderID)
		case 2:
			p = captured(orderID, p.CustomerID, t0)
			p.Status = payment.StatusRefundPending
			p.PendingRefund = &payment.Refund{RefundID: app.RefundIDFor(orderID), Amount: p.Amount, Reason: payment.RefundShipmentFailed,
				CausationID: testenv.IDFor("failed/" + orderID), CreatedAt: t0}
		}
		store(t, repo, p)
		pending[orderID] = p
	}
	decided := captured(testenv.IDFor(t.Name()+"/decided"), testenv.IDFor("customer"), t0)
	store(t, repo, decided)
	for id, want := range pending {
		got, err := repo.Get(ctx, id)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("read back %+v, %v; want %+v", got, err, want)
		}
	}
	if early, err := repo.ClaimExpired(ctx, 100); err != nil || len(early) != 0 {
		t.Fatalf("claimed %d live intents (%v)", len(early), err)
	}
	// Wait for the leases to run out (an outcome, not a duration); a claim
	// then holds its row for an hour, so no row can be claimed twice here.
	repo.WithLease(time.Hour)
	deadline := time.Now().Add(time.Minute)
	var mu sync.Mutex
	claims := map[string]int{}
	for len(claims) < n && time.Now().Before(deadline) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				got, err := repo.ClaimExpired(ctx, 100)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, p := range got {
					claims[p.OrderID]++
				}
			})
		}
		wg.Wait()
		time.Sleep(20 * time.Millisecond)
	}
	if len(claims) != n {
		t.Fatalf("claimed %d of %d expired intents", len(claims), n)
	}
	for id, c := range claims {
		if c != 1 || pending[id] == nil {
			t.Fatalf("order %s claimed %d times (pending %v)", id, c, pending[id] != nil)
		}
	}
}
