package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/tools/internal/audit"
	"github.com/sagasuite/sagasuite/tools/internal/stack"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

const unitPrice = 1250 // minor units, EUR

// Bounds of the waits for the suite: they catch a saga that never ends, not
// a slow one, so they hold on a machine busy with other work. Orders have
// the stack's generous deadline (stack.TestOrderDeadline) unless a test is
// about the deadline.
const (
	sagaWait  = 3 * time.Minute // one order to reach a state or step
	auditWait = 3 * time.Minute // compensations to settle into a clean audit
)

// world is one running suite plus what a scenario placed in it, so the
// audit can be scoped to exactly that.
type world struct {
	t         *testing.T
	ctx       context.Context
	s         *stack.Stack
	customers []string
	skus      []string
}

// newWorld starts the five services (env overrides per service) and returns
// a world bounded by a context of limit.
func newWorld(t *testing.T, limit time.Duration, env map[string]map[string]string) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	s := stack.New(t, stack.Options{BinDir: binDir, Env: env})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return &world{t: t, ctx: ctx, s: s}
}

// product creates a SKU with stock units.
func (w *world) product(stock int32) string {
	w.t.Helper()
	sku := "E2E-" + strings.ToUpper(uuid.NewString()[:8])
	c := w.s.Clients()
	if _, err := c.Inventory.UpsertProduct(w.ctx, &inventoryv1.UpsertProductRequest{
		Sku: sku, Name: "widget " + sku, UnitPrice: &commonv1.Money{AmountMinor: unitPrice, Currency: "EUR"},
	}); err != nil {
		w.t.Fatalf("UpsertProduct: %v", err)
	}
	if stock > 0 {
		if _, err := c.Inventory.AddStock(w.ctx, &inventoryv1.AddStockRequest{Sku: sku, Quantity: stock, RequestId: uuid.NewString()}); err != nil {
			w.t.Fatalf("AddStock: %v", err)
		}
	}
	w.skus = append(w.skus, sku)
	return sku
}

func (w *world) customer() string {
	id := uuid.NewString()
	w.customers = append(w.customers, id)
	return id
}

func address(country, postal string) *commonv1.Address {
	return &commonv1.Address{Name: "Ada Lovelace", Line1: "1 Analytical Street", City: "Somewhere", PostalCode: postal, CountryCode: country}
}

// orderSpec is one order to place.
type orderSpec struct {
	customer string
	sku      string
	qty      int32
	token    string            // payment token; "tok_visa" pays
	address  *commonv1.Address // nil: a deliverable German address
}

func (w *world) request(o orderSpec) *orderv1.CreateOrderRequest {
	if o.token == "" {
		o.token = "tok_visa"
	}
	if o.address == nil {
		o.address = address("DE", "10115")
	}
	return &orderv1.CreateOrderRequest{
		CustomerId: o.customer, Currency: "EUR", ShippingAddress: o.address, PaymentMethodToken: o.token,
		Lines:     []*commonv1.LineItem{{Sku: o.sku, Quantity: o.qty, UnitPriceMinor: unitPrice}},
		RequestId: uuid.NewString(),
	}
}

// place creates an order and returns its id.
func (w *world) place(o orderSpec) string {
	w.t.Helper()
	resp, err := w.s.Clients().Order.CreateOrder(w.ctx, w.request(o))
	if err != nil {
		w.t.Fatalf("CreateOrder: %v", err)
	}
	return resp.GetOrder().GetOrderId()
}

// placeRetrying keeps trying one CreateOrder (same request id, so at most one
// order) while the order service is down or restarting.
func (w *world) placeRetrying(req *orderv1.CreateOrderRequest) (string, error) {
	for {
		ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
		resp, err := w.s.Clients().Order.CreateOrder(ctx, req)
		cancel()
		if err == nil {
			return resp.GetOrder().GetOrderId(), nil
		}
		if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
			return "", err
		}
		select {
		case <-w.ctx.Done():
			return "", err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// terminal waits until the order is COMPLETED or CANCELLED.
func (w *world) terminal(orderID string, bound time.Duration) *orderv1.Order {
	w.t.Helper()
	return awaitTerminal(w.ctx, w.t, w.s, orderID, bound)
}

// expect waits for a terminal order and checks its status and cancel reason.
func (w *world) expect(orderID string, want orderv1.OrderStatus, reason eventsv1.CancelReason) *orderv1.Order {
	w.t.Helper()
	o := w.terminal(orderID, sagaWait)
	if o.GetStatus() != want || o.GetCancelReason() != reason {
		w.t.Fatalf("order %s ended %s (%s: %s), want %s (%s); steps:\n%s",
			orderID, o.GetStatus(), o.GetCancelReason(), o.GetCancelDetail(), want, reason, steps(o))
	}
	return o
}

// waitStep waits until the order's history holds an event of type typ.
func (w *world) waitStep(orderID string, typ eventsv1.EventType) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, sagaWait)
	defer cancel()
	for {
		resp, err := w.s.Clients().Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: orderID})
		if err == nil {
			for _, st := range resp.GetOrder().GetSteps() {
				if st.GetEventType() == typ {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			w.t.Fatalf("order %s: no %s step within %s (last error %v); steps:\n%s", orderID, typ, sagaWait, err, steps(resp.GetOrder()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stock reads a SKU's levels.
func (w *world) stock(sku string) *inventoryv1.Stock {
	w.t.Helper()
	resp, err := w.s.Clients().Inventory.GetStock(w.ctx, &inventoryv1.GetStockRequest{Sku: sku})
	if err != nil {
		w.t.Fatalf("GetStock %s: %v", sku, err)
	}
	return resp.GetStock()
}

// audit runs the invariant audit over everything the scenario placed,
// retrying while compensations catch up, and fails on violations.
func (w *world) audit() audit.Report {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, auditWait)
	defer cancel()
	rep, err := audit.Await(ctx, w.s.Clients(), audit.Scope{CustomerIDs: w.customers, SKUs: w.skus, GatewayURL: w.s.GatewayURL()}, 200*time.Millisecond)
	if err != nil {
		w.t.Fatalf("audit: %v", err)
	}
	if !rep.OK() || rep.Pending != 0 {
		w.t.Fatalf("audit: %d orders, %d pending, violations:\n  %s", rep.Orders, rep.Pending, strings.Join(rep.Violations, "\n  "))
	}
	return rep
}
