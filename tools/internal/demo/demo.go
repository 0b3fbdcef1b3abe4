// Package demo shows the saga at work on a running suite: it seeds a small
// catalog of its own, places orders that take every path — success, out of
// stock, unknown SKU, payment declined, shipment failed, customer cancel,
// deadline — follows them to their end, prints each order's step timeline,
// runs the invariant audit over everything it placed, and sums it up in one
// JSON line (Summary).
//
// Two paths need a saga that waits: a customer cancel that lands before the
// shipment, and an order that outlives its deadline. On a healthy stack no
// order waits, so with a Control (a way to stop and start one service) the
// demo makes them wait: shipping stopped while the order reaches
// INVENTORY_UPDATED, then CancelOrder; payment stopped while the order's
// deadline passes. Only that order gets a short deadline (the Control
// restarts the order service with it for that one order, then restores the
// stack's own): every other order keeps the stack's deadline, which should
// be generous (minutes), so no other path depends on how fast the machine
// is. Without a Control the demo cannot stall anything: it cancels an order
// right after creating it (the cancel usually wins; if the saga finished
// first, the order is COMPLETED and the table says so) and skips the
// deadline path, saying why.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/tools/internal/audit"
	"github.com/sagasuite/sagasuite/tools/internal/bench"
	"github.com/sagasuite/sagasuite/tools/internal/suite"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

// Control stops and starts one service of the stack (suite.Payment, …) and
// sets the order service's deadline for orders created from then on.
type Control interface {
	Stop(ctx context.Context, service string) error
	Start(ctx context.Context, service string) error
	// SetOrderDeadline makes the order service give orders it creates from
	// now on deadline d (it may restart the service); it returns once the
	// service is ready again.
	SetOrderDeadline(ctx context.Context, d time.Duration) error
}

// Options tune Run. Zero values take the defaults noted.
type Options struct {
	// Control lets the demo stall a service (see the package comment); nil:
	// the cancel races the saga and the deadline path is skipped.
	Control Control
	// Progress receives a line per step of the demo (nil: none).
	Progress io.Writer
	// OrderTimeout bounds the wait for one order to end (3 min: a bound for
	// a stuck saga, not a speed requirement; the deadline order gets its
	// deadline on top).
	OrderTimeout time.Duration
	// ShortDeadline is the deadline the deadline path's order gets (2 s).
	// Payment is stopped meanwhile, so the order times out however slow the
	// machine is; a longer one only makes the demo wait longer.
	ShortDeadline time.Duration
	// AuditTimeout bounds the wait for a clean audit while compensations
	// settle (3 min).
	AuditTimeout time.Duration
	// GatewayURL is the payment gateway whose own ledger the audit compares
	// with payment ("": not compared).
	GatewayURL string
}

func (o Options) withDefaults() Options {
	if o.OrderTimeout <= 0 {
		o.OrderTimeout = 3 * time.Minute
	}
	if o.ShortDeadline <= 0 {
		o.ShortDeadline = 2 * time.Second
	}
	if o.AuditTimeout <= 0 {
		o.AuditTimeout = 3 * time.Minute
	}
	return o
}

// Summary is the demo's one-line verdict.
type Summary struct {
	Orders     int      `json:"orders"`
	Completed  int      `json:"completed"`
	Cancelled  int      `json:"cancelled"`
	Pending    int      `json:"pending"`
	Unexpected int      `json:"unexpected"` // orders not ended as their scenario expects (or not placed)
	Invariants string   `json:"invariants"` // "ok" or "violated"
	Violations []string `json:"violations"`
}

// OK is the demo's success: every order ended as its scenario expects, none
// is left pending, no invariant is violated.
func (s Summary) OK() bool { return s.Pending == 0 && s.Unexpected == 0 && s.Invariants == "ok" }

// Placed is one order of the demo.
type Placed struct {
	Scenario string
	// Expect lists the acceptable outcomes (bench.Outcome names).
	Expect []string
	// Note says what happened on the way (e.g. the cancel lost the race).
	Note  string
	ID    string
	Order *orderv1.Order // as last read, with its steps
	Took  time.Duration  // CreateOrder → terminal (0 when it did not end)
	Err   error          // placing or awaiting failed
}

// Outcome is bench.Outcome of the order ("PENDING" when it did not end).
func (p *Placed) Outcome() string {
	if p.Order == nil {
		return "PENDING"
	}
	return bench.Outcome(p.Order)
}

// AsExpected reports whether the order ended one of the expected ways.
func (p *Placed) AsExpected() bool {
	for _, e := range p.Expect {
		if p.Outcome() == e {
			return true
		}
	}
	return false
}

// Result is everything the demo did.
type Result struct {
	Orders  []*Placed
	Skipped []string // "deadline: why"
	// Seeded is the catalog the demo added, as it stood right after seeding
	// (a recording of the demo carries it as the state to replay from).
	Seeded  []SeededProduct
	Audit   audit.Report
	Summary Summary
}

// SeededProduct is one product the demo seeded and its stock then.
type SeededProduct struct {
	SKU, Name  string
	PriceMinor int64
	Currency   string
	Available  int64 // units free to reserve right after seeding
}

// The catalog the demo seeds (SKU suffix, name, price in minor units, stock).
var catalog = []struct {
	suffix, name string
	price        int64
	stock        int32
}{
	{"MUG", "Saga mug", 1250, 20},
	{"TEE", "Compensation tee", 1999, 10},
	{"POSTER", "Last-one poster", 900, 1},
}

type runner struct {
	c     suite.Clients
	opts  Options
	run   string
	skus  map[string]string // suffix → SKU
	price map[string]int64  // SKU → price
	// seeded is what seed added, in catalog order.
	seeded []SeededProduct

	mu        sync.Mutex
	orders    []*Placed
	customers []string
}

// Run places the demo's orders on the suite behind c and audits them. An
// error means the demo could not run at all (e.g. the catalog could not be
// seeded); trouble with single orders shows in the Result and its Summary.
func Run(ctx context.Context, c suite.Clients, opts Options) (*Result, error) {
	r := &runner{c: c, opts: opts.withDefaults(), run: strings.ToUpper(uuid.NewString()[:8]),
		skus: map[string]string{}, price: map[string]int64{}}
	if err := r.seed(ctx); err != nil {
		return nil, err
	}
	res := &Result{Seeded: r.seeded}

	// Phase 1: the paths a healthy stack decides by itself, all at once.
	mug, tee, poster := r.skus["MUG"], r.skus["TEE"], r.skus["POSTER"]
	type plan struct {
		scenario string
		expect   []string
		req      *orderv1.CreateOrderRequest
		cancel   bool // CancelOrder right after CreateOrder
	}
	plans := []plan{
		{"success", []string{"COMPLETED"}, r.request(line(mug, 2)), false},
		{"success, two lines", []string{"COMPLETED"}, r.request(line(mug, 1), line(tee, 1)), false},
		{"out of stock", []string{"OUT_OF_STOCK"}, r.request(line(poster, 3)), false},
		{"unknown SKU", []string{"OUT_OF_STOCK"}, r.request(line("DEMO-"+r.run+"-NOPE", 1)), false},
		{"payment declined", []string{"PAYMENT_FAILED"}, r.withToken(r.request(line(tee, 2)), "tok_decline"), false},
		{"shipment failed", []string{"SHIPMENT_FAILED"}, r.withAddress(r.request(line(mug, 1)), "AQ", "9999"), false},
	}
	if r.opts.Control == nil {
		plans = append(plans, plan{"customer cancel (races the saga)", []string{"CUSTOMER_REQUESTED", "COMPLETED"}, r.request(line(tee, 1)), true})
	}
	r.progress("placing %d orders at once", len(plans))
	var wg sync.WaitGroup
	for _, p := range plans {
		placed := r.add(p.scenario, p.expect)
		wg.Go(func() {
			if !r.place(ctx, placed, p.req) {
				return
			}
			if p.cancel {
				r.cancel(ctx, placed, "race")
			}
			r.await(ctx, placed, r.opts.OrderTimeout)
		})
	}
	wg.Wait()

	if r.opts.Control == nil {
		res.Skipped = append(res.Skipped, "deadline: the demo can stall a saga only with a stack whose services it can stop (sagactl demo --dev, or the e2e harness)")
	} else {
		// Phase 2: the customer cancels while the order waits for shipping.
		if err := r.cancelBeforeShipment(ctx, r.request(line(mug, 3))); err != nil {
			return nil, err
		}
		// Phase 3: payment is down while the order's short deadline passes.
		if stackDeadline, ok := r.stackDeadline(); !ok {
			res.Skipped = append(res.Skipped, "deadline: no order told the stack's deadline, which the demo must restore after the short one")
		} else if err := r.deadline(ctx, r.request(line(tee, 2)), stackDeadline); err != nil {
			return nil, err
		}
	}

	// The audit, once compensations have settled; then re-read every order
	// for its full history (late compensations included).
	r.progress("auditing %d orders (stock, money, shipments, saga log) while compensations settle", len(r.orders))
	actx, cancel := context.WithTimeout(ctx, r.opts.AuditTimeout)
	rep, err := audit.Await(actx, c, audit.Scope{CustomerIDs: r.customers, SKUs: r.skuList(), GatewayURL: r.opts.GatewayURL}, 200*time.Millisecond)
	cancel()
	res.Orders, res.Audit = r.orders, rep
	for _, p := range r.orders {
		if p.ID == "" {
			continue
		}
		if resp, err := c.Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: p.ID}); err == nil {
			p.Order = resp.GetOrder()
		}
	}
	res.Summary = summarize(rep, err, r.orders)
	return res, nil
}

// summarize builds the verdict from the audit (or, when the audit could not
// read the services, from the demo's own observations).
func summarize(rep audit.Report, auditErr error, orders []*Placed) Summary {
	s := Summary{Orders: rep.Orders, Completed: rep.Completed, Cancelled: rep.Cancelled, Pending: rep.Pending,
		Invariants: "ok", Violations: append([]string{}, rep.Violations...)}
	if auditErr != nil {
		s = Summary{Orders: len(orders), Violations: []string{fmt.Sprintf("the audit could not read the services: %v", auditErr)}}
		for _, p := range orders {
			switch p.Outcome() {
			case "PENDING":
				s.Pending++
			case "COMPLETED":
				s.Completed++
			default:
				s.Cancelled++
			}
		}
	}
	// An order the demo placed but the audit did not find is pending too.
	if placed := countPlaced(orders); s.Orders < placed {
		s.Violations = append(s.Violations, fmt.Sprintf("the demo placed %d orders, the order service lists %d", placed, s.Orders))
	}
	if len(s.Violations) > 0 {
		s.Invariants = "violated"
	}
	s.Unexpected = countUnexpected(orders)
	return s
}

func countUnexpected(orders []*Placed) int {
	n := 0
	for _, p := range orders {
		if !p.AsExpected() {
			n++
		}
	}
	return n
}

func countPlaced(orders []*Placed) int {
	n := 0
	for _, p := range orders {
		if p.ID != "" {
			n++
		}
	}
	return n
}

func (r *runner) seed(ctx context.Context) error {
	for _, p := range catalog {
		sku := "DEMO-" + r.run + "-" + p.suffix
		if _, err := r.c.Inventory.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{
			Sku: sku, Name: p.name, UnitPrice: &commonv1.Money{AmountMinor: p.price, Currency: "EUR"},
		}); err != nil {
			return fmt.Errorf("seed product %s: %w", sku, err)
		}
		added, err := r.c.Inventory.AddStock(ctx, &inventoryv1.AddStockRequest{Sku: sku, Quantity: p.stock, RequestId: uuid.NewString()})
		if err != nil {
			return fmt.Errorf("seed stock of %s: %w", sku, err)
		}
		r.skus[p.suffix], r.price[sku] = sku, p.price
		r.seeded = append(r.seeded, SeededProduct{SKU: sku, Name: p.name, PriceMinor: p.price, Currency: "EUR",
			Available: added.GetStock().GetAvailable()})
	}
	r.progress("seeded %s: %d mugs, %d tees, %d poster", strings.Join(r.skuList(), ", "), catalog[0].stock, catalog[1].stock, catalog[2].stock)
	return nil
}

func (r *runner) skuList() []string {
	var out []string
	for _, p := range catalog {
		out = append(out, r.skus[p.suffix])
	}
	return out
}

type lineSpec struct {
	sku string
	qty int32
}

func line(sku string, qty int32) lineSpec { return lineSpec{sku, qty} }

// request is an order of a fresh customer to a deliverable address, paid by
// a card that works.
func (r *runner) request(lines ...lineSpec) *orderv1.CreateOrderRequest {
	req := &orderv1.CreateOrderRequest{
		CustomerId: uuid.NewString(), Currency: "EUR", PaymentMethodToken: "tok_visa", RequestId: uuid.NewString(),
		ShippingAddress: &commonv1.Address{Name: "Ada Lovelace", Line1: "1 Analytical Street", City: "Berlin", PostalCode: "10115", CountryCode: "DE"},
	}
	for _, l := range lines {
		price := r.price[l.sku]
		if price == 0 {
			price = 500 // the unknown SKU
		}
		req.Lines = append(req.Lines, &commonv1.LineItem{Sku: l.sku, Quantity: l.qty, UnitPriceMinor: price})
	}
	return req
}

func (r *runner) withToken(req *orderv1.CreateOrderRequest, token string) *orderv1.CreateOrderRequest {
	req.PaymentMethodToken = token
	return req
}

func (r *runner) withAddress(req *orderv1.CreateOrderRequest, country, postal string) *orderv1.CreateOrderRequest {
	req.ShippingAddress.CountryCode, req.ShippingAddress.PostalCode = country, postal
	return req
}

func (r *runner) add(scenario string, expect []string) *Placed {
	p := &Placed{Scenario: scenario, Expect: expect}
	r.mu.Lock()
	r.orders = append(r.orders, p)
	r.mu.Unlock()
	return p
}

// place creates the order; false when it could not.
func (r *runner) place(ctx context.Context, p *Placed, req *orderv1.CreateOrderRequest) bool {
	cctx, cancel := context.WithTimeout(ctx, r.opts.OrderTimeout)
	defer cancel()
	// WaitForReady: the order service may have just been restarted (the
	// deadline path); the request id makes a retry harmless anyway.
	resp, err := r.c.Order.CreateOrder(cctx, req, grpc.WaitForReady(true))
	r.mu.Lock()
	r.customers = append(r.customers, req.GetCustomerId())
	r.mu.Unlock()
	if err != nil {
		p.Err = fmt.Errorf("CreateOrder: %w", err)
		r.progress("%-34s CreateOrder failed: %v", p.Scenario, err)
		return false
	}
	p.ID, p.Order = resp.GetOrder().GetOrderId(), resp.GetOrder()
	return true
}

// cancel asks for the order's cancellation; a FailedPrecondition means the
// saga completed first, which the note records.
func (r *runner) cancel(ctx context.Context, p *Placed, why string) {
	_, err := r.c.Order.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: p.ID, Reason: "demo: " + why})
	switch {
	case err == nil:
		p.Note = "CancelOrder accepted"
	case status.Code(err) == codes.FailedPrecondition:
		p.Note = "the saga completed before CancelOrder arrived"
	default:
		p.Note = fmt.Sprintf("CancelOrder failed: %v", err)
	}
}

// await follows the order to its end, at most bound after now.
func (r *runner) await(ctx context.Context, p *Placed, bound time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	o, err := bench.AwaitTerminal(ctx, r.c.Order, p.ID, 0)
	if o != nil {
		p.Order = o
	}
	if err != nil {
		p.Err = fmt.Errorf("not ended within %s: %w", bound, err)
		r.progress("%-34s %s still %s after %s", p.Scenario, short(p.ID), p.Outcome(), bound)
		return
	}
	p.Took = p.Order.GetUpdateTime().AsTime().Sub(p.Order.GetCreateTime().AsTime())
	mark := "as expected"
	if !p.AsExpected() {
		mark = "UNEXPECTED, wanted " + strings.Join(p.Expect, " or ")
	}
	r.progress("%-34s %s %-28s in %-8s %s", p.Scenario, short(p.ID), describe(p.Order), p.Took.Round(time.Millisecond), mark)
}

// stackDeadline reads the order deadline off a placed order.
func (r *runner) stackDeadline() (time.Duration, bool) {
	for _, p := range r.orders {
		if o := p.Order; o.GetDeadline() != nil && o.GetCreateTime() != nil {
			return o.GetDeadline().AsTime().Sub(o.GetCreateTime().AsTime()), true
		}
	}
	return 0, false
}

// cancelBeforeShipment: with shipping stopped the order pauses after
// INVENTORY_UPDATED (paid, stock deducted); the customer cancels; shipping
// comes back and must not ship, payment refunds, inventory restores.
func (r *runner) cancelBeforeShipment(ctx context.Context, req *orderv1.CreateOrderRequest) error {
	p := r.add("customer cancel before shipment", []string{"CUSTOMER_REQUESTED"})
	r.progress("stopping shipping, so the next order waits for its shipment")
	if err := r.opts.Control.Stop(ctx, suite.Shipping); err != nil {
		return fmt.Errorf("stop shipping: %w", err)
	}
	restarted := false
	restart := func() error {
		if restarted {
			return nil
		}
		restarted = true
		r.progress("starting shipping again")
		if err := r.opts.Control.Start(ctx, suite.Shipping); err != nil {
			return fmt.Errorf("start shipping: %w", err)
		}
		return nil
	}
	defer restart() //nolint:errcheck // on the error paths only; the main path checks it
	if r.place(ctx, p, req) {
		if err := r.awaitStep(ctx, p, eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED, r.opts.OrderTimeout); err != nil {
			p.Note = err.Error()
		} else {
			r.progress("%-34s %s paid and deducted, waiting for shipping: cancelling", p.Scenario, short(p.ID))
			r.cancel(ctx, p, "changed my mind before shipment")
		}
	}
	if err := restart(); err != nil {
		return err
	}
	if p.ID != "" {
		r.await(ctx, p, r.opts.OrderTimeout)
	}
	return nil
}

// deadline: with payment stopped the order waits after STOCK_RESERVED until
// its deadline passes and the order service cancels it (TIMEOUT); payment
// comes back and its late work is compensated. The order service gives this
// one order ShortDeadline and gets stackDeadline back right after, so the
// short deadline never meets an order that is meant to finish.
func (r *runner) deadline(ctx context.Context, req *orderv1.CreateOrderRequest, stackDeadline time.Duration) (err error) {
	p := r.add("deadline", []string{"TIMEOUT"})
	shortDeadline := r.opts.ShortDeadline
	r.progress("stopping payment and giving the next order a %s deadline, so it outlives it", shortDeadline)
	if err := r.opts.Control.Stop(ctx, suite.Payment); err != nil {
		return fmt.Errorf("stop payment: %w", err)
	}
	defer func() {
		r.progress("starting payment again (its late work for the order is compensated)")
		if startErr := r.opts.Control.Start(ctx, suite.Payment); startErr != nil {
			err = errors.Join(err, fmt.Errorf("start payment: %w", startErr))
		}
	}()
	if err := r.opts.Control.SetOrderDeadline(ctx, shortDeadline); err != nil {
		return fmt.Errorf("set the order deadline to %s: %w", shortDeadline, err)
	}
	placed := r.place(ctx, p, req)
	r.progress("restoring the stack's %s order deadline", stackDeadline)
	if err := r.opts.Control.SetOrderDeadline(ctx, stackDeadline); err != nil {
		return fmt.Errorf("restore the order deadline %s: %w", stackDeadline, err)
	}
	if placed {
		r.await(ctx, p, shortDeadline+r.opts.OrderTimeout)
	}
	return nil
}

// awaitStep polls the order until its history holds a step of typ.
func (r *runner) awaitStep(ctx context.Context, p *Placed, typ eventsv1.EventType, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		resp, err := r.c.Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: p.ID})
		if err == nil {
			p.Order = resp.GetOrder()
			for _, st := range p.Order.GetSteps() {
				if st.GetEventType() == typ {
					return nil
				}
			}
			if bench.Terminal(p.Order) {
				return fmt.Errorf("ended %s before %s", describe(p.Order), stepName(typ))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no %s step within %s", stepName(typ), bound)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *runner) progress(format string, args ...any) {
	if r.opts.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.opts.Progress, "demo: "+format+"\n", args...)
}

// describe is "COMPLETED" or "CANCELLED (REASON)".
func describe(o *orderv1.Order) string {
	switch out := bench.Outcome(o); out {
	case "COMPLETED", "PENDING":
		return out
	default:
		return "CANCELLED (" + out + ")"
	}
}

func stepName(t eventsv1.EventType) string { return strings.TrimPrefix(t.String(), "EVENT_TYPE_") }

func short(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:] // UUIDv7: the tail differs, the head is the time
	}
	return id
}
