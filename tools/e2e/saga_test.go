package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/tools/internal/suite"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
)

const (
	completed = orderv1.OrderStatus_ORDER_STATUS_COMPLETED
	cancelled = orderv1.OrderStatus_ORDER_STATUS_CANCELLED
	noReason  = eventsv1.CancelReason_CANCEL_REASON_UNSPECIFIED
)

// payment reads an order's payment; nil when the payment service has none.
func (w *world) payment(orderID string) *paymentv1.Payment {
	w.t.Helper()
	resp, err := w.s.Clients().Payment.GetPayment(w.ctx, &paymentv1.GetPaymentRequest{OrderId: orderID})
	if status.Code(err) == codes.NotFound {
		return nil
	}
	if err != nil {
		w.t.Fatalf("GetPayment %s: %v", orderID, err)
	}
	return resp.GetPayment()
}

func (w *world) shipments(customer string) []*shippingv1.Shipment {
	w.t.Helper()
	resp, err := w.s.Clients().Shipping.ListShipments(w.ctx, &shippingv1.ListShipmentsRequest{CustomerId: customer, PageSize: 100})
	if err != nil {
		w.t.Fatalf("ListShipments: %v", err)
	}
	return resp.GetShipments()
}

func TestOutOfStockCancelsAndChargesNothing(t *testing.T) {
	w := newWorld(t, 15*time.Minute, nil)
	sku := w.product(1)
	cust := w.customer()
	short := w.place(orderSpec{customer: cust, sku: sku, qty: 2})
	unknown := w.place(orderSpec{customer: cust, sku: "E2E-NO-SUCH-SKU", qty: 1})
	for _, id := range []string{short, unknown} {
		w.expect(id, cancelled, eventsv1.CancelReason_CANCEL_REASON_OUT_OF_STOCK)
		if p := w.payment(id); p != nil {
			t.Errorf("order %s was out of stock but has a payment %v", id, p)
		}
	}
	if st := w.stock(sku); st.GetAvailable() != 1 || st.GetReserved() != 0 {
		t.Errorf("stock after a refused order: %+v, want 1 available, 0 reserved", st)
	}
	w.audit()
}

func TestPaymentDeclinedReleasesTheReservation(t *testing.T) {
	w := newWorld(t, 15*time.Minute, nil)
	sku := w.product(5)
	id := w.place(orderSpec{customer: w.customer(), sku: sku, qty: 3, token: "tok_decline"})
	w.expect(id, cancelled, eventsv1.CancelReason_CANCEL_REASON_PAYMENT_FAILED)
	w.waitStep(id, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED)
	if st := w.stock(sku); st.GetAvailable() != 5 || st.GetReserved() != 0 || st.GetSold() != 0 {
		t.Errorf("stock after a declined payment: %+v, want 5 available again", st)
	}
	if p := w.payment(id); p == nil || p.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_FAILED {
		t.Errorf("payment %v, want FAILED", p)
	}
	w.audit()
}

func TestShipmentFailedRefundsOnceAndRestoresStock(t *testing.T) {
	w := newWorld(t, 15*time.Minute, nil)
	sku := w.product(5)
	cust := w.customer()
	id := w.place(orderSpec{customer: cust, sku: sku, qty: 2, address: address("AQ", "9999")})
	w.expect(id, cancelled, eventsv1.CancelReason_CANCEL_REASON_SHIPMENT_FAILED)
	w.waitStep(id, eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED)
	w.waitStep(id, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED)
	p := w.payment(id)
	if p.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED || len(p.GetRefunds()) != 1 ||
		p.GetRefunds()[0].GetAmount().GetAmountMinor() != 2*unitPrice {
		t.Errorf("payment %v, want REFUNDED with one refund of %d", p, 2*unitPrice)
	}
	if st := w.stock(sku); st.GetAvailable() != 5 || st.GetSold() != 2 || st.GetRestored() != 2 {
		t.Errorf("stock %+v, want 5 available, 2 sold, 2 restored", st)
	}
	w.audit()
}

// The shipping service is down, so the order waits after its stock was
// deducted and its payment captured; the customer cancels; when shipping
// comes back it must not ship, and everything done is undone.
func TestCustomerCancelBeforeShipmentCompensatesEveryStep(t *testing.T) {
	w := newWorld(t, 15*time.Minute, nil)
	if err := w.s.Stop(suite.Shipping); err != nil {
		t.Fatal(err)
	}
	sku := w.product(4)
	cust := w.customer()
	id := w.place(orderSpec{customer: cust, sku: sku, qty: 3})
	w.waitStep(id, eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED)
	resp, err := w.s.Clients().Order.CancelOrder(w.ctx, &orderv1.CancelOrderRequest{OrderId: id, Reason: "changed my mind"})
	if err != nil {
		t.Fatalf("CancelOrder: %v", err)
	}
	if resp.GetOrder().GetStatus() != cancelled {
		t.Fatalf("CancelOrder returned %s", resp.GetOrder().GetStatus())
	}
	if err := w.s.StartService(w.ctx, suite.Shipping); err != nil {
		t.Fatal(err)
	}
	w.expect(id, cancelled, eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED)
	w.waitStep(id, eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED)
	w.waitStep(id, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED)
	// Shipping gets INVENTORY_UPDATED and ORDER_CANCELLED in either order:
	// wait until it has applied both, then look.
	w.published(id, eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)
	w.caughtUp(suite.Shipping, events.TopicOrders, events.TopicInventory)
	w.audit()
	for _, sh := range w.shipments(cust) {
		if sh.GetStatus() == shippingv1.ShipmentStatus_SHIPMENT_STATUS_CREATED {
			t.Errorf("a shipment of a cancelled order is active: %v", sh)
		}
	}
	if st := w.stock(sku); st.GetAvailable() != 4 {
		t.Errorf("stock %+v, want all 4 available again", st)
	}
	// A retried cancel is harmless; a completed order cannot be cancelled.
	if _, err := w.s.Clients().Order.CancelOrder(w.ctx, &orderv1.CancelOrderRequest{OrderId: id}); err != nil {
		t.Errorf("second CancelOrder: %v", err)
	}
	done := w.place(orderSpec{customer: cust, sku: sku, qty: 1})
	w.expect(done, completed, noReason)
	if _, err := w.s.Clients().Order.CancelOrder(w.ctx, &orderv1.CancelOrderRequest{OrderId: done}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("CancelOrder on a completed order: %v, want FailedPrecondition", err)
	}
	w.audit()
}

// Payment is down past the order's deadline: the order is cancelled with
// TIMEOUT, and when payment comes back its late work is compensated.
func TestDeadlineCancelsAndLateWorkIsCompensated(t *testing.T) {
	w := newWorld(t, 15*time.Minute, map[string]map[string]string{
		suite.Order: {"ORDER_DEADLINE": "3s", "ORDER_DEADLINE_SCAN_INTERVAL": "100ms"},
	})
	if err := w.s.Stop(suite.Payment); err != nil {
		t.Fatal(err)
	}
	sku := w.product(6)
	cust := w.customer()
	ids := []string{w.place(orderSpec{customer: cust, sku: sku, qty: 2}), w.place(orderSpec{customer: cust, sku: sku, qty: 1})}
	for _, id := range ids {
		w.waitStep(id, eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED)
		w.expect(id, cancelled, eventsv1.CancelReason_CANCEL_REASON_TIMEOUT)
	}
	if err := w.s.StartService(w.ctx, suite.Payment); err != nil {
		t.Fatal(err)
	}
	// Payment now gets both STOCK_RESERVED and ORDER_CANCELLED, in either
	// order: wait until it has applied everything published, then look.
	for _, id := range ids {
		w.published(id, eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)
	}
	w.caughtUp(suite.Payment, events.TopicOrders, events.TopicInventory)
	w.audit()
	if st := w.stock(sku); st.GetAvailable() != 6 || st.GetReserved() != 0 {
		t.Errorf("stock %+v, want all 6 available again", st)
	}
	for _, id := range ids {
		if p := w.payment(id); p != nil && p.GetStatus() == paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED {
			t.Errorf("timed-out order %s keeps a captured payment %v", id, p)
		}
	}
}

// Many orders race for the last units: exactly as many succeed as there are
// units, and stock never goes negative.
// A flash sale: 200 concurrent orders for one SKU with 10 units. Exactly 10
// complete and the rest are cancelled OUT_OF_STOCK; none is stuck behind the
// hot stock row (the consumer isolates keys, so the hot SKU's queue of
// reservations does not hold other events back). The time until all 200 are
// terminal is logged as a figure, not asserted.
func TestFlashSaleSellsExactlyTheStock(t *testing.T) {
	w := newWorld(t, 15*time.Minute, nil)
	const units, orders = 10, 200
	sku := w.product(units)
	reqs := make([]*orderv1.CreateOrderRequest, orders)
	for i := range reqs {
		reqs[i] = w.request(orderSpec{customer: w.customer(), sku: sku, qty: 1})
	}
	ids := make([]string, orders)
	var wg sync.WaitGroup
	errs := make(chan error, orders)
	start := time.Now()
	for i := range reqs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := w.s.Clients().Order.CreateOrder(w.ctx, reqs[i])
			if err != nil {
				errs <- err
				return
			}
			ids[i] = resp.GetOrder().GetOrderId()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("CreateOrder: %v", err)
	}
	won := 0
	for _, id := range ids {
		switch o := w.terminal(id, sagaWait); {
		case o.GetStatus() == completed:
			won++
		case o.GetCancelReason() != eventsv1.CancelReason_CANCEL_REASON_OUT_OF_STOCK:
			t.Errorf("order %s cancelled for %s, want only OUT_OF_STOCK losers", id, o.GetCancelReason())
		}
	}
	t.Logf("flash sale: %d orders for %d units all terminal within %v of the first CreateOrder", orders, units, time.Since(start).Round(time.Millisecond))
	if won != units {
		t.Errorf("%d orders completed, want exactly %d", won, units)
	}
	if st := w.stock(sku); st.GetAvailable() != 0 || st.GetSold() != units || st.GetReserved() != 0 {
		t.Errorf("stock %+v, want 0 available, %d sold", st, units)
	}
	w.audit()
}

// Each service in turn is killed with SIGKILL in the middle of a load of
// orders of every kind and started again: every order still ends, nothing is
// charged, shipped or sold twice, and stock and money add up.
func TestKillNineEachServiceMidLoad(t *testing.T) {
	// The stack's generous deadline: a saga that a kill lost must show as
	// an order that never ends, not hide behind a TIMEOUT.
	w := newWorld(t, 20*time.Minute, nil)
	skus := []string{w.product(500), w.product(500), w.product(3)}
	kinds := []orderSpec{
		{qty: 1}, {qty: 2}, {qty: 1, token: "tok_decline"}, {qty: 1, address: address("KP", "1000")}, {qty: 2},
	}
	var (
		mu     sync.Mutex
		ids    []string
		loadWg sync.WaitGroup
		failed = make(chan error, 1)
	)
	stopLoad := make(chan struct{})
	loadWg.Add(1)
	go func() { // the load: an order every 50 ms until told to stop
		defer loadWg.Done()
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				return
			case <-time.After(50 * time.Millisecond):
			}
			spec := kinds[i%len(kinds)]
			spec.customer = w.customer()
			spec.sku = skus[i%len(skus)]
			id, err := w.placeRetrying(w.request(spec))
			if err != nil {
				select {
				case failed <- fmt.Errorf("order %d: %w", i, err):
				default:
				}
				return
			}
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		}
	}()
	kills := 0
	for _, name := range suite.Services {
		time.Sleep(1500 * time.Millisecond)
		if err := w.s.Kill(name); err != nil {
			t.Fatalf("kill -9 %s: %v", name, err)
		}
		kills++
		time.Sleep(500 * time.Millisecond)
		if err := w.s.StartService(w.ctx, name); err != nil {
			t.Fatalf("restart %s: %v", name, err)
		}
	}
	time.Sleep(time.Second)
	close(stopLoad)
	loadWg.Wait()
	select {
	case err := <-failed:
		t.Fatal(err)
	default:
	}
	statuses := map[orderv1.OrderStatus]int{}
	reasons := map[eventsv1.CancelReason]int{}
	for _, id := range ids {
		o := w.terminal(id, sagaWait)
		statuses[o.GetStatus()]++
		if o.GetStatus() == cancelled {
			reasons[o.GetCancelReason()]++
		}
	}
	rep := w.audit()
	t.Logf("crash test: %d orders (%d completed, %d cancelled: %v), %d kills -9, %d violations",
		len(ids), statuses[completed], statuses[cancelled], reasons, kills, len(rep.Violations))
	if statuses[completed] == 0 || statuses[cancelled] == 0 {
		t.Errorf("load did not exercise both outcomes: %v", statuses)
	}
}
