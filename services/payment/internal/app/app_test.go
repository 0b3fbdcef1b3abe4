package app_test

// Use-case tests: the app over the real store (MariaDB), the simulated
// gateway (wrapped to count calls) and the real envelope encoder. They prove
// the saga rules that span several events: refund at most once, a late
// STOCK_RESERVED after ORDER_CANCELLED, duplicates and races.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/payment/internal/adapters"
	"github.com/sagasuite/sagasuite/services/payment/internal/adapters/simgateway"
	"github.com/sagasuite/sagasuite/services/payment/internal/app"
	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
	"github.com/sagasuite/sagasuite/services/payment/internal/ports"
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// countingGateway counts the calls that reach the simulated gateway.
type countingGateway struct {
	inner            *simgateway.Gateway
	charges, refunds atomic.Int64
	// refundKeys holds the distinct idempotency keys refunded: a transaction
	// that InnoDB aborts on deadlock is run again by sqlstore.InTx and calls
	// the gateway again with the same key, which refunds nothing twice.
	refundKeys sync.Map
}

func (g *countingGateway) distinctRefunds() int64 {
	var n int64
	g.refundKeys.Range(func(any, any) bool { n++; return true })
	return n
}

func (g *countingGateway) Charge(ctx context.Context, key string, amount payment.Money, token string) (string, error) {
	g.charges.Add(1)
	return g.inner.Charge(ctx, key, amount, token)
}

func (g *countingGateway) Refund(ctx context.Context, key, chargeID string, amount payment.Money) (string, error) {
	g.refunds.Add(1)
	g.refundKeys.Store(key, true)
	return g.inner.Refund(ctx, key, chargeID, amount)
}

func (g *countingGateway) ChargeStatus(ctx context.Context, key string) (payment.ChargeOutcome, bool, error) {
	return g.inner.ChargeStatus(ctx, key)
}

func (g *countingGateway) RefundStatus(ctx context.Context, key string) (string, bool, error) {
	return g.inner.RefundStatus(ctx, key)
}

type fixture struct {
	app     app.Application
	db      *sql.DB
	gateway *countingGateway
	changed atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, _ := testenv.MySQLDatabase(t)
	if err := adapters.Migrate(context.Background(), db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	sim, err := simgateway.New(0)
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return t0 }
	f := &fixture{db: db, gateway: &countingGateway{inner: sim}}
	f.app = app.New(app.Deps{
		Repo: adapters.NewPaymentMySQLRepository(db, "payment", now), Gateway: f.gateway,
		Encode: ports.Encode, Now: now, Changed: func() { f.changed.Add(1) },
	})
	return f
}

type order struct{ id, customer string }

func newOrder(t *testing.T, name string) order {
	return order{id: testenv.IDFor(t.Name() + "/" + name), customer: testenv.IDFor(t.Name() + "/customer")}
}

func (o order) reserved(token string, amount int64) app.ChargePayment {
	return app.ChargePayment{EventID: testenv.IDFor(o.id + "/STOCK_RESERVED"), OrderID: o.id, CustomerID: o.customer,
		Amount: payment.Money{AmountMinor: amount, Currency: "EUR"}, PaymentToken: token}
}

func (o order) cancelled() app.CancelPayment {
	return app.CancelPayment{EventID: testenv.IDFor(o.id + "/ORDER_CANCELLED"), OrderID: o.id, CustomerID: o.customer}
}

func (o order) shipmentFailed() app.RefundFailedShipment {
	return app.RefundFailedShipment{EventID: testenv.IDFor(o.id + "/SHIPMENT_FAILED"), OrderID: o.id}
}

// emitted decodes the outbox rows of an order, in order.
func (f *fixture) emitted(t *testing.T, orderID string) []*eventsv1.Envelope {
	t.Helper()
	rows, err := f.db.Query("SELECT payload FROM outbox WHERE msg_key = ? ORDER BY id", orderID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []*eventsv1.Envelope
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		env, err := events.Unmarshal(b)
		if err != nil {
			t.Fatalf("outbox row is not a valid envelope: %v", err)
		}
		out = append(out, env)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func types(envs []*eventsv1.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = events.TypeName(e.GetType())
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestChargeCapturesOrFails(t *testing.T) {
	tests := []struct {
		token      string
		amount     int64
		wantStatus payment.Status
		wantEvent  string
		wantReason eventsv1.PaymentFailureReason
		wantCode   string
	}{
		{"tok_visa", 2500, payment.StatusCaptured, "PAYMENT_PROCESSED", 0, ""},
		{simgateway.TokenDecline, 2500, payment.StatusFailed, "PAYMENT_FAILED", eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_DECLINED, "card_declined"},
		{simgateway.TokenInsufficientFunds, 2500, payment.StatusFailed, "PAYMENT_FAILED", eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_INSUFFICIENT_FUNDS, "insufficient_funds"},
		{simgateway.TokenExpired, 2500, payment.StatusFailed, "PAYMENT_FAILED", eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_INVALID_PAYMENT_METHOD, "expired_card"},
		{"tok_visa", simgateway.AmountLimitMinor + 1, payment.StatusFailed, "PAYMENT_FAILED", eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_DECLINED, "amount_limit_exceeded"},
	}
	f := newFixture(t)
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.token, tt.amount), func(t *testing.T) {
			o := newOrder(t, fmt.Sprint(i))
			cmd := o.reserved(tt.token, tt.amount)
			must(t, f.app.ChargePayment.Handle(ctx, cmd))
			must(t, f.app.ChargePayment.Handle(ctx, cmd)) // a redelivery changes nothing
			p, err := f.app.GetPayment.Handle(ctx, o.id)
			must(t, err)
			if p.Status != tt.wantStatus || p.PaymentID != app.PaymentIDFor(o.id) || p.Amount.AmountMinor != tt.amount {
				t.Fatalf("payment %+v, want %s of %d with the derived id", p, tt.wantStatus, tt.amount)
			}
			envs := f.emitted(t, o.id)
			if len(envs) != 1 || events.TypeName(envs[0].GetType()) != tt.wantEvent {
				t.Fatalf("emitted %v, want one %s", types(envs), tt.wantEvent)
			}
			env := envs[0]
			if env.GetCausationId() != cmd.EventID || env.GetProducer() != "payment" || env.GetCustomerId() != o.customer {
				t.Fatalf("envelope meta %+v: want caused by %s, producer payment, customer %s", env, cmd.EventID, o.customer)
			}
			if pp := env.GetPaymentProcessed(); tt.wantEvent == "PAYMENT_PROCESSED" &&
				(pp.GetPaymentId() != p.PaymentID || pp.GetAmount().GetAmountMinor() != tt.amount || pp.GetAmount().GetCurrency() != "EUR") {
				t.Fatalf("PAYMENT_PROCESSED %+v, want payment %s, %d EUR", pp, p.PaymentID, tt.amount)
			}
			if pf := env.GetPaymentFailed(); tt.wantEvent == "PAYMENT_FAILED" &&
				(pf.GetReason() != tt.wantReason || pf.GetDeclineCode() != tt.wantCode || pf.GetDetail() == "") {
				t.Fatalf("PAYMENT_FAILED %+v, want %s/%s with detail", pf, tt.wantReason, tt.wantCode)
			}
		})
	}
	if n := f.gateway.charges.Load(); n != int64(len(tests)) {
		t.Fatalf("gateway charged %d times for %d orders (redeliveries must not reach it)", n, len(tests))
	}
}

// SHIPMENT_FAILED then ORDER_CANCELLED (the order's reaction to it): one
// refund, caused by the failure; the cancel finds REFUNDED and does nothing.
func TestRefundOnceWhenShipmentFailsThenOrderIsCancelled(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	o := newOrder(t, "order")
	must(t, f.app.ChargePayment.Handle(ctx, o.reserved("tok_visa", 4200)))
	must(t, f.app.RefundFailedShipment.Handle(ctx, o.shipmentFailed()))
	must(t, f.app.CancelPayment.Handle(ctx, o.cancelled()))
	must(t, f.app.RefundFailedShipment.Handle(ctx, o.shipmentFailed()))

	p, err := f.app.GetPayment.Handle(ctx, o.id)
	must(t, err)
	if p.Status != payment.StatusRefunded || p.Refund == nil || p.Refund.Reason != payment.RefundShipmentFailed ||
		p.Refund.Amount.AmountMinor != 4200 || p.Refund.RefundID != app.RefundIDFor(o.id) {
		t.Fatalf("payment %+v refund %+v: want REFUNDED in full for SHIPMENT_FAILED", p, p.Refund)
	}
	envs := f.emitted(t, o.id)
	if got := fmt.Sprint(types(envs)); got != "[PAYMENT_PROCESSED PAYMENT_REFUNDED]" {
		t.Fatalf("emitted %s", got)
	}
	refund := envs[1]
	if refund.GetCausationId() != o.shipmentFailed().EventID ||
		refund.GetPaymentRefunded().GetReason() != eventsv1.RefundReason_REFUND_REASON_SHIPMENT_FAILED ||
		refund.GetPaymentRefunded().GetPaymentId() != p.PaymentID || refund.GetPaymentRefunded().GetAmount().GetAmountMinor() != 4200 {
		t.Fatalf("PAYMENT_REFUNDED %+v", refund)
	}
	if n := f.gateway.refunds.Load(); n != 1 {
		t.Fatalf("gateway refunded %d times, want 1", n)
	}
}

// Both compensations, each delivered several times, all at once (two
// replicas, redeliveries): exactly one refund, one PAYMENT_REFUNDED, one
// gateway refund call.
func TestRefundOnceUnderConcurrentDuplicatedCompensations(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const orders, copies = 6, 4
	var wg sync.WaitGroup
	errs := make(chan error, orders*copies*2)
	var all []order
	for i := range orders {
		o := newOrder(t, fmt.Sprint(i))
		all = append(all, o)
		must(t, f.app.ChargePayment.Handle(ctx, o.reserved("tok_visa", 1000+int64(i))))
		for range copies {
			wg.Add(2)
			go func() { defer wg.Done(); errs <- f.app.CancelPayment.Handle(ctx, o.cancelled()) }()
			go func() { defer wg.Done(); errs <- f.app.RefundFailedShipment.Handle(ctx, o.shipmentFailed()) }()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	for _, o := range all {
		envs := f.emitted(t, o.id)
		if got := fmt.Sprint(types(envs)); got != "[PAYMENT_PROCESSED PAYMENT_REFUNDED]" {
			t.Fatalf("order %s emitted %s", o.id, got)
		}
		cause := envs[1].GetCausationId()
		if cause != o.cancelled().EventID && cause != o.shipmentFailed().EventID {
			t.Fatalf("refund caused by %s, neither compensation", cause)
		}
		p, err := f.app.GetPayment.Handle(ctx, o.id)
		must(t, err)
		if p.Status != payment.StatusRefunded || p.Refund == nil || p.Refund.CausationID != cause {
			t.Fatalf("payment %+v: want REFUNDED by the event that emitted the refund", p)
		}
	}
	var refunds int
	must(t, f.db.QueryRow("SELECT COUNT(*) FROM refunds").Scan(&refunds))
	if refunds != orders || f.gateway.distinctRefunds() != orders {
		t.Fatalf("%d refund rows, %d distinct gateway refunds; want %d each", refunds, f.gateway.distinctRefunds(), orders)
	}
}

// ORDER_CANCELLED overtakes STOCK_RESERVED across topics: the tombstone makes
// the late charge a no-op — no gateway call, no event, nothing to show.
func TestStockReservedAfterCancelChargesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	o := newOrder(t, "order")
	must(t, f.app.CancelPayment.Handle(ctx, o.cancelled()))
	must(t, f.app.ChargePayment.Handle(ctx, o.reserved("tok_visa", 2500)))
	must(t, f.app.RefundFailedShipment.Handle(ctx, o.shipmentFailed()))
	if n := f.gateway.charges.Load() + f.gateway.refunds.Load(); n != 0 {
		t.Fatalf("gateway called %d times for a cancelled order", n)
	}
	if envs := f.emitted(t, o.id); len(envs) != 0 {
		t.Fatalf("emitted %v for a cancelled order", types(envs))
	}
	if _, err := f.app.GetPayment.Handle(ctx, o.id); !errors.Is(err, payment.ErrNotFound) {
		t.Fatalf("GetPayment of a cancelled-before-charge order: %v, want ErrNotFound", err)
	}
	list, _, err := f.app.ListPayments.Handle(ctx, o.customer, 0, "")
	if err != nil || len(list) != 0 {
		t.Fatalf("ListPayments = %d payments, %v; want none", len(list), err)
	}
	if f.changed.Load() != 0 {
		t.Fatalf("relay woken %d times with nothing to send", f.changed.Load())
	}
}

// handleAsConsumer runs a handler the way the bus consumer does in
// production: an invalid event (what the consumer dead-letters at once) is
// returned, any other error (a deadlock that outlasted InTx's own retries, a
// lost connection) is retried with capped backoff until ctx ends.
func handleAsConsumer(ctx context.Context, handle func(context.Context) error) error {
	wait := 10 * time.Millisecond
	for {
		err := handle(ctx)
		if err == nil || errors.Is(err, payment.ErrInvalid) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// STOCK_RESERVED and ORDER_CANCELLED racing: whichever wins, the money adds
// up — either nothing was charged, or the charge was refunded. Both handlers
// run as the consumer runs them, retried on transient errors (the deadlocks
// this race provokes among them).
func TestChargeRacingCancelNeverKeepsMoney(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a bound for a hang only
	defer cancel()
	const orders = 10
	var wg sync.WaitGroup
	errs := make(chan error, orders*2)
	var all []order
	for i := range orders {
		o := newOrder(t, fmt.Sprint(i))
		all = append(all, o)
		wg.Go(func() {
			errs <- handleAsConsumer(ctx, func(ctx context.Context) error {
				return f.app.ChargePayment.Handle(ctx, o.reserved("tok_visa", 999))
			})
		})
		wg.Go(func() {
			errs <- handleAsConsumer(ctx, func(ctx context.Context) error { return f.app.CancelPayment.Handle(ctx, o.cancelled()) })
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	for _, o := range all {
		got := fmt.Sprint(types(f.emitted(t, o.id)))
		if got != "[]" && got != "[PAYMENT_PROCESSED PAYMENT_REFUNDED]" {
			t.Fatalf("order %s emitted %s: a charge kept after the cancel", o.id, got)
		}
	}
}

func TestListPaymentsPagesNewestFirstAndRejectsBadInput(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var customer string
	for i := range 5 {
		o := newOrder(t, fmt.Sprint(i))
		customer = o.customer
		must(t, f.app.ChargePayment.Handle(ctx, o.reserved("tok_visa", int64(100+i))))
	}
	seen := map[string]bool{}
	token, pages := "", 0
	for {
		page, next, err := f.app.ListPayments.Handle(ctx, customer, 2, token)
		must(t, err)
		pages++
		for _, p := range page {
			if seen[p.OrderID] {
				t.Fatalf("order %s listed twice", p.OrderID)
			}
			seen[p.OrderID] = true
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		token = next
	}
	if len(seen) != 5 || pages != 3 {
		t.Fatalf("listed %d payments in %d pages, want 5 in 3", len(seen), pages)
	}
	for _, tt := range []struct {
		size  int
		token string
		field string
	}{{-1, "", "page_size"}, {app.MaxPageSize + 1, "", "page_size"}, {0, "not-a-token", "page_token"}} {
		_, _, err := f.app.ListPayments.Handle(ctx, customer, tt.size, tt.token)
		var invalid *payment.InvalidError
		if !errors.As(err, &invalid) || invalid.Field != tt.field {
			t.Fatalf("ListPayments(size %d, token %q) = %v, want invalid %s", tt.size, tt.token, err, tt.field)
		}
	}
}

// BenchmarkChargePayment measures the STOCK_RESERVED handler end to end on
// MariaDB (inbox claim, locking read, simulated charge, payment row, outbox
// row, commit), with 8 orders in flight like the consumer's workers.
func BenchmarkChargePayment(b *testing.B) {
	db, _ := testenv.MySQLDatabase(b)
	if err := adapters.Migrate(context.Background(), db); err != nil {
		b.Fatal(err)
	}
	sim, _ := simgateway.New(0)
	now := func() time.Time { return t0 }
	a := app.New(app.Deps{Repo: adapters.NewPaymentMySQLRepository(db, "payment", now), Gateway: sim, Encode: ports.Encode, Now: now})
	customer := events.NewID()
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			orderID := events.NewID()
			err := a.ChargePayment.Handle(context.Background(), app.ChargePayment{EventID: events.NewID(), OrderID: orderID,
				CustomerID: customer, Amount: payment.Money{AmountMinor: 2500, Currency: "EUR"}, PaymentToken: "tok_visa"})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "charges/s")
}

// A replica dies after the gateway charged and before the answer was
// recorded: the intent stays CHARGE_PENDING; once its lease runs out the
// sweeper finds the charge by its key and records it — PAYMENT_PROCESSED
// once, no second charge. A cancel noted meanwhile turns it into a refund.
func TestSweeperRecordsWhatACrashedReplicaLeftAtTheGateway(t *testing.T) {
	db, _ := testenv.MySQLDatabase(t)
	must(t, adapters.Migrate(context.Background(), db))
	sim, err := simgateway.New(0)
	must(t, err)
	gw := &countingGateway{inner: sim}
	now := func() time.Time { return t0 }
	deps := app.Deps{Repo: adapters.NewPaymentMySQLRepository(db, "payment", now).WithLease(time.Second), Gateway: gw,
		Encode: ports.Encode, Now: now}
	crashing := deps
	crashing.AfterGatewayCall = func(context.Context, string, string) error { return errors.New("crashed") }
	dying, healthy := app.New(crashing), app.New(deps)
	f := &fixture{db: db}
	ctx := context.Background()

	kept, cancelled := newOrder(t, "kept"), newOrder(t, "cancelled")
	must(t, dying.ChargePayment.Handle(ctx, kept.reserved("tok_visa", 700)))
	must(t, dying.ChargePayment.Handle(ctx, cancelled.reserved("tok_visa", 800)))
	must(t, healthy.CancelPayment.Handle(ctx, cancelled.cancelled())) // noted on the pending charge
	if n := len(f.emitted(t, kept.id)) + len(f.emitted(t, cancelled.id)); n != 0 || gw.charges.Load() != 2 {
		t.Fatalf("before the sweep: %d events, %d charges; want none recorded, 2 charges", n, gw.charges.Load())
	}
	deadline := time.Now().Add(time.Minute)
	for swept := 0; swept < 2; {
		n, err := healthy.Sweeper.SweepOnce(ctx)
		must(t, err)
		swept += n
		if time.Now().After(deadline) {
			t.Fatalf("swept %d of 2 intents within a minute", swept)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := fmt.Sprint(types(f.emitted(t, kept.id))); got != "[PAYMENT_PROCESSED]" {
		t.Fatalf("kept order emitted %s", got)
	}
	if got := fmt.Sprint(types(f.emitted(t, cancelled.id))); got != "[PAYMENT_PROCESSED PAYMENT_REFUNDED]" {
		t.Fatalf("cancelled order emitted %s", got)
	}
	if gw.charges.Load() != 2 || gw.distinctRefunds() != 1 {
		t.Fatalf("%d charges, %d refunds at the gateway; want 2 and 1 (the sweeper looked them up)", gw.charges.Load(), gw.distinctRefunds())
	}
	for _, o := range []order{kept, cancelled} {
		if net := sim.Ledger().Account(o.id).NetMinor; (o == kept) != (net == 700) || (o == cancelled && net != 0) {
			t.Fatalf("order %s: the gateway holds %d", o.id, net)
		}
	}
}
