// Package bench is sagasuite's load generator: it places orders against any
// running suite (five gRPC addresses) and measures how fast sagas finish.
//
// Load is open-loop at a target rate (orders are placed on a timetable,
// whatever the stack does, so a slow stack shows as latency and a growing
// number in flight) or closed-loop at a concurrency (each of N callers places
// an order, waits for its saga to end, places the next). Every order is
// followed from CreateOrder until it is COMPLETED or CANCELLED, through
// WatchOrder (falling back to GetOrder polling if the stream breaks); that
// span is the latency reported. A run seeds its own SKUs with plenty of stock
// and its own customers, so it never touches anything else on the stack.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/tools/internal/suite"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

// Config is one run. Zero values take the defaults noted.
type Config struct {
	// Rate > 0: open loop, orders per second. Otherwise closed loop.
	Rate float64
	// Concurrency of the closed loop (8).
	Concurrency int
	// Orders to place (0: no count limit) and Duration to place them for
	// (0: no time limit). With neither, Duration is 10 s. In-flight sagas
	// are awaited after placing stops.
	Orders   int
	Duration time.Duration
	// Mix of order kinds (all success).
	Mix Mix
	// SKUs the orders are spread over (8), each seeded with 1,000,000 units;
	// Customers they are spread over (16).
	SKUs, Customers int
	// Timeout bounds one order from CreateOrder to its terminal state (2 min);
	// an order not terminal by then counts as unfinished.
	Timeout time.Duration
	// Poll > 0 follows orders by polling GetOrder at this interval instead
	// of WatchOrder.
	Poll time.Duration
	// Progress receives one updating status line (nil: none), every
	// ProgressEvery (500 ms).
	Progress      io.Writer
	ProgressEvery time.Duration
	// Stop, once closed, ends placing as reaching Orders or Duration does;
	// in-flight sagas are still awaited (nil: never).
	Stop <-chan struct{}
	// Observe, when set, is called once for every placed order when it has
	// ended or its wait gave up, from that order's goroutine.
	Observe func(OrderEnd)
	// Probe, if set, measures CPU per process and operation counters over
	// the run (Result.Instruments).
	Probe *Probe
}

// OrderEnd is one placed order's fate, for Config.Observe.
type OrderEnd struct {
	OrderID string
	Kind    Kind
	// Placed is when CreateOrder returned, Ended when the terminal state
	// was seen (or the wait gave up).
	Placed, Ended time.Time
	// Outcome as Outcome names it; "" when the order did not end (Err says why).
	Outcome string
	Err     error
}

// Ends collects OrderEnds: a Config.Observe that is safe for concurrent use.
type Ends struct {
	mu   sync.Mutex
	list []OrderEnd
}

// Add records one order's end (pass it as Config.Observe).
func (e *Ends) Add(o OrderEnd) {
	e.mu.Lock()
	e.list = append(e.list, o)
	e.mu.Unlock()
}

// Snapshot copies what was recorded so far.
func (e *Ends) Snapshot() []OrderEnd {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]OrderEnd(nil), e.list...)
}

// stopped reports whether stop is closed (a nil stop never is).
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

const (
	unitPrice     = 1000 // minor units, EUR
	stockPerSKU   = 1_000_000
	watchFallback = 50 * time.Millisecond
)

func (c Config) withDefaults() (Config, error) {
	if c.Rate < 0 {
		return c, fmt.Errorf("rate %v: want > 0 (open loop) or 0 (closed loop)", c.Rate)
	}
	if c.Concurrency < 0 || c.Orders < 0 || c.Duration < 0 || c.SKUs < 0 || c.Customers < 0 || c.Timeout < 0 || c.Poll < 0 {
		return c, errors.New("concurrency, orders, duration, skus, customers, timeout and poll must not be negative")
	}
	if c.Rate > 0 && c.Concurrency > 0 {
		return c, errors.New("give a rate (open loop) or a concurrency (closed loop), not both")
	}
	if c.Rate == 0 && c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.Orders == 0 && c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Mix.total() == 0 {
		c.Mix = AllSuccess
	} else if c.Mix.total() != 100 {
		return c, fmt.Errorf("mix %v adds up to %d, want 100", c.Mix, c.Mix.total())
	}
	if c.SKUs == 0 {
		c.SKUs = 8
	}
	if c.Customers == 0 {
		c.Customers = 16
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 500 * time.Millisecond
	}
	return c, nil
}

// Mode describes the load: "open loop at 50/s" or "closed loop, concurrency 8".
func (c Config) Mode() string {
	if c.Rate > 0 {
		return fmt.Sprintf("open loop at %g/s", c.Rate)
	}
	return fmt.Sprintf("closed loop, concurrency %d", c.Concurrency)
}

// Result is what a run measured.
type Result struct {
	Mode string `json:"mode"`
	Mix  string `json:"mix"`
	// Placed orders (CreateOrder succeeded); Done of them reached a terminal
	// state; Unfinished did not within the timeout (or the run was stopped).
	Placed     int `json:"placed"`
	Done       int `json:"done"`
	Unfinished int `json:"unfinished"`
	// Elapsed runs from the first CreateOrder to the last terminal state;
	// SagasPerSec = Done / Elapsed. OfferedPerSec = Placed / the placing window.
	Elapsed       time.Duration `json:"-"`
	SagasPerSec   float64       `json:"sagas_per_sec"`
	OfferedPerSec float64       `json:"offered_per_sec"`
	// Latency of the Done orders, CreateOrder → terminal.
	Latency Latency `json:"latency"`
	// Outcomes of the Done orders: "COMPLETED" or the cancel reason
	// ("OUT_OF_STOCK", "PAYMENT_FAILED", "SHIPMENT_FAILED", "TIMEOUT", …).
	Outcomes map[string]int `json:"outcomes"`
	// Unexpected counts Done orders whose outcome is not their kind's
	// (e.g. a success order cancelled for TIMEOUT).
	Unexpected int `json:"unexpected"`
	// Errors by call and gRPC code ("CreateOrder: Unavailable"); a failed
	// CreateOrder is not placed, a failed wait is unfinished.
	Errors map[string]int `json:"errors"`
	// Instruments: CPU and operations per completed saga (Config.Probe).
	Instruments *Instruments `json:"instruments,omitempty"`
	// What the run seeded, e.g. to audit it afterwards.
	CustomerIDs []string `json:"-"`
	SKUs        []string `json:"-"`
}

// Completed is the number of COMPLETED orders; Cancelled the rest of Done.
func (r Result) Completed() int { return r.Outcomes[completed] }

// Cancelled is the number of Done orders that ended CANCELLED.
func (r Result) Cancelled() int { return r.Done - r.Completed() }

const completed = "COMPLETED"

// Outcome names an order's end: "COMPLETED", its cancel reason without the
// CANCEL_REASON_ prefix, or "PENDING".
func Outcome(o *orderv1.Order) string {
	switch o.GetStatus() {
	case orderv1.OrderStatus_ORDER_STATUS_COMPLETED:
		return completed
	case orderv1.OrderStatus_ORDER_STATUS_CANCELLED:
		return strings.TrimPrefix(o.GetCancelReason().String(), "CANCEL_REASON_")
	}
	return "PENDING"
}

// Terminal reports whether the order's saga has ended.
func Terminal(o *orderv1.Order) bool {
	s := o.GetStatus()
	return s == orderv1.OrderStatus_ORDER_STATUS_COMPLETED || s == orderv1.OrderStatus_ORDER_STATUS_CANCELLED
}

// AwaitTerminal follows an order until it is COMPLETED or CANCELLED or ctx
// ends: through WatchOrder when poll is 0 (GetOrder polling if the stream
// breaks, e.g. the order service restarts), else by polling GetOrder every
// poll. Errors of single calls are retried until ctx ends; the returned
// error is the last one (or ctx's).
func AwaitTerminal(ctx context.Context, c orderv1.OrderServiceClient, orderID string, poll time.Duration) (*orderv1.Order, error) {
	var lastErr error
	if poll <= 0 {
		o, err := watch(ctx, c, orderID)
		if err == nil {
			return o, nil
		}
		lastErr, poll = err, watchFallback
	}
	for {
		resp, err := c.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: orderID})
		if err == nil && Terminal(resp.GetOrder()) {
			return resp.GetOrder(), nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = ctx.Err()
			}
			return resp.GetOrder(), lastErr
		case <-time.After(poll):
		}
	}
}

func watch(ctx context.Context, c orderv1.OrderServiceClient, orderID string) (*orderv1.Order, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.WatchOrder(ctx, &orderv1.WatchOrderRequest{OrderId: orderID})
	if err != nil {
		return nil, err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("WatchOrder ended before the order did")
			}
			return nil, err
		}
		if Terminal(resp.GetOrder()) {
			return resp.GetOrder(), nil
		}
	}
}

// Run seeds SKUs and customers, places orders per cfg, waits for every
// placed one to end (or time out), and returns what it measured. An error
// means the run could not start (bad config, seeding failed); errors of
// single orders are counted in the Result. Cancelling ctx stops placing and
// waiting; the Result then covers what happened so far.
func Run(ctx context.Context, c suite.Clients, cfg Config) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	r := &runner{cfg: cfg, c: c, picker: newPicker(cfg.Mix), errs: map[string]int{}, outcomes: map[string]int{}}
	if err := r.seed(ctx); err != nil {
		return Result{}, err
	}
	var before probeSnapshot
	if cfg.Probe != nil {
		before = cfg.Probe.snapshot(ctx) // after seeding: its work is not the sagas'
	}
	stopProgress := r.startProgress()
	r.start = time.Now()
	lim := limits{orders: cfg.Orders, duration: cfg.Duration}
	var wg sync.WaitGroup
	if cfg.Rate > 0 {
		sched := schedule{start: r.start, rate: cfg.Rate}
	open:
		for i := 0; ; i++ {
			due := sched.at(i)
			if !lim.more(i, r.start, due) || stopped(cfg.Stop) {
				break
			}
			if wait := time.Until(due); wait > 0 {
				select {
				case <-ctx.Done():
					break open
				case <-cfg.Stop:
					break open
				case <-time.After(wait):
				}
			} else if ctx.Err() != nil {
				break
			}
			wg.Go(func() { r.order(ctx, i) })
		}
	} else {
		var next atomic.Int64
		for range cfg.Concurrency {
			wg.Go(func() {
				for ctx.Err() == nil && !stopped(cfg.Stop) {
					i := int(next.Add(1) - 1)
					if !lim.more(i, r.start, time.Now()) {
						return
					}
					r.order(ctx, i)
				}
			})
		}
	}
	r.mu.Lock()
	r.placingDone = time.Now()
	r.mu.Unlock()
	wg.Wait()
	stopProgress()
	res := r.result()
	if cfg.Probe != nil {
		res.Instruments = compare(before, cfg.Probe.snapshot(context.WithoutCancel(ctx)), res.Completed())
	}
	return res, nil
}

type runner struct {
	cfg       Config
	c         suite.Clients
	skus      []string
	emptySKU  string
	customers []string
	start     time.Time

	mu          sync.Mutex
	picker      *picker
	placed      int
	done        int
	unfinished  int
	latencies   []time.Duration
	outcomes    map[string]int
	unexpected  int
	errs        map[string]int
	lastEnd     time.Time
	placingDone time.Time // set when the placing loop ends (closed loop: when the workers are launched)
	lastPlaced  time.Time
}

// seed creates the run's products: cfg.SKUs in stock, one without stock for
// out-of-stock orders; and its customer ids.
func (r *runner) seed(ctx context.Context) error {
	run := strings.ToUpper(uuid.NewString()[:8])
	for i := range r.cfg.SKUs {
		sku := fmt.Sprintf("BENCH-%s-%02d", run, i)
		if err := r.product(ctx, sku, stockPerSKU); err != nil {
			return err
		}
		r.skus = append(r.skus, sku)
	}
	if r.cfg.Mix[OutOfStock] > 0 {
		r.emptySKU = fmt.Sprintf("BENCH-%s-EMPTY", run)
		if err := r.product(ctx, r.emptySKU, 0); err != nil {
			return err
		}
		r.skus = append(r.skus, r.emptySKU)
	}
	for range r.cfg.Customers {
		r.customers = append(r.customers, uuid.NewString())
	}
	return nil
}

func (r *runner) product(ctx context.Context, sku string, stock int32) error {
	if _, err := r.c.Inventory.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{
		Sku: sku, Name: "bench item " + sku, UnitPrice: &commonv1.Money{AmountMinor: unitPrice, Currency: "EUR"},
	}); err != nil {
		return fmt.Errorf("seed product %s: %w", sku, err)
	}
	if stock > 0 {
		if _, err := r.c.Inventory.AddStock(ctx, &inventoryv1.AddStockRequest{Sku: sku, Quantity: stock, RequestId: uuid.NewString()}); err != nil {
			return fmt.Errorf("seed stock of %s: %w", sku, err)
		}
	}
	return nil
}

// request builds order i of the given kind.
func (r *runner) request(i int, k Kind) *orderv1.CreateOrderRequest {
	sku := r.skus[i%r.cfg.SKUs]
	token, country, postal := "tok_visa", "DE", "10115"
	switch k {
	case Declined:
		token = "tok_decline"
	case Undeliverable:
		country, postal = "AQ", "9999"
	case OutOfStock:
		sku = r.emptySKU
	}
	return &orderv1.CreateOrderRequest{
		CustomerId: r.customers[i%len(r.customers)],
		Lines:      []*commonv1.LineItem{{Sku: sku, Quantity: 1, UnitPriceMinor: unitPrice}},
		Currency:   "EUR",
		ShippingAddress: &commonv1.Address{
			Name: "Bench Customer", Line1: "1 Load Street", City: "Testtown", PostalCode: postal, CountryCode: country,
		},
		PaymentMethodToken: token,
		RequestId:          uuid.NewString(),
	}
}

// order places order i and follows it to its end.
func (r *runner) order(ctx context.Context, i int) {
	r.mu.Lock()
	k := r.picker.next()
	r.mu.Unlock()
	req := r.request(i, k)

	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	began := time.Now()
	resp, err := r.c.Order.CreateOrder(ctx, req)
	if err != nil {
		r.fail("CreateOrder", err)
		return
	}
	placed := time.Now()
	r.mu.Lock()
	r.placed++
	r.lastPlaced = placed
	r.mu.Unlock()

	o := resp.GetOrder()
	id := o.GetOrderId()
	if !Terminal(o) {
		o, err = AwaitTerminal(ctx, r.c.Order, id, r.cfg.Poll)
	}
	ended := time.Now()
	if r.cfg.Observe != nil {
		end := OrderEnd{OrderID: id, Kind: k, Placed: placed, Ended: ended, Err: err}
		if err == nil {
			end.Outcome = Outcome(o)
		}
		r.cfg.Observe(end)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.unfinished++
		r.errs["await terminal: "+codeOf(err)]++
		return
	}
	r.done++
	r.latencies = append(r.latencies, ended.Sub(began))
	out := Outcome(o)
	r.outcomes[out]++
	if out != k.Expected() {
		r.unexpected++
	}
	if ended.After(r.lastEnd) {
		r.lastEnd = ended
	}
}

func (r *runner) fail(call string, err error) {
	r.mu.Lock()
	r.errs[call+": "+codeOf(err)]++
	r.mu.Unlock()
}

func codeOf(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded.String()
	case errors.Is(err, context.Canceled):
		return codes.Canceled.String()
	}
	return status.Code(err).String()
}

// snapshot is the progress line's numbers.
func (r *runner) snapshot() (placed, done, inFlight int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.placed, r.done, r.placed - r.done - r.unfinished
}

// startProgress writes the status line every ProgressEvery until the
// returned func is called, which writes the final line and a newline.
func (r *runner) startProgress() (stop func()) {
	w := r.cfg.Progress
	if w == nil {
		return func() {}
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	line := func() {
		placed, done, inFlight := r.snapshot()
		el := time.Since(r.start)
		rate := 0.0
		if el > 0 {
			rate = float64(done) / el.Seconds()
		}
		fmt.Fprintf(w, "\rbench  elapsed %6.1fs  placed %6d  done %6d  in flight %5d  sagas/s %7.1f ",
			el.Seconds(), placed, done, inFlight, rate)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(r.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-quit:
				line()
				fmt.Fprintln(w)
				return
			case <-t.C:
				line()
			}
		}
	}()
	return func() { close(quit); <-finished }
}

func (r *runner) result() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{
		Mode:        r.cfg.Mode(),
		Mix:         r.cfg.Mix.String(),
		Placed:      r.placed,
		Done:        r.done,
		Unfinished:  r.unfinished,
		Latency:     summarize(r.latencies),
		Outcomes:    r.outcomes,
		Unexpected:  r.unexpected,
		Errors:      r.errs,
		CustomerIDs: r.customers,
		SKUs:        r.skus,
	}
	if r.done > 0 {
		res.Elapsed = r.lastEnd.Sub(r.start)
		res.SagasPerSec = float64(r.done) / res.Elapsed.Seconds()
	}
	// The placing window: open loop until the loop ended; closed loop until
	// the last successful CreateOrder.
	window := r.placingDone.Sub(r.start)
	if r.cfg.Rate == 0 {
		window = r.lastPlaced.Sub(r.start)
	}
	if r.placed > 0 && window > 0 {
		res.OfferedPerSec = float64(r.placed) / window.Seconds()
	}
	return res
}
