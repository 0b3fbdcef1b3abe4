// Package e2e runs the whole suite, five service processes built from this
// checkout, against the local real stack, and checks what comes out through
// the services' public APIs and the invariant audit.
package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sagasuite/sagasuite/tools/internal/audit"
	"github.com/sagasuite/sagasuite/tools/internal/stack"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

// binDir holds the five service binaries, built once for the package.
var binDir string

func TestMain(m *testing.M) {
	stack.MainWithBinaries(m, "e2e", func(dir string) { binDir = dir })
}

// TestHappyPathOrderCompletes places one order that every service accepts
// and expects it COMPLETED, and then an audit without violations: the stock
// moved from available to sold, the money was captured once, one shipment
// exists, and the saga log holds every step.
func TestHappyPathOrderCompletes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	s := stack.New(t, stack.Options{BinDir: binDir})
	started := time.Now()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("suite provisioned, started and ready in %s", time.Since(started).Round(time.Millisecond))
	c := s.Clients()

	sku := "E2E-" + strings.ToUpper(uuid.NewString()[:8])
	const unitPrice = 1250
	if _, err := c.Inventory.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{
		Sku: sku, Name: "End-to-end widget", UnitPrice: &commonv1.Money{AmountMinor: unitPrice, Currency: "EUR"},
	}); err != nil {
		t.Fatalf("UpsertProduct: %v", err)
	}
	if _, err := c.Inventory.AddStock(ctx, &inventoryv1.AddStockRequest{Sku: sku, Quantity: 10, RequestId: uuid.NewString()}); err != nil {
		t.Fatalf("AddStock: %v", err)
	}

	customer := uuid.NewString()
	placed := time.Now()
	created, err := c.Order.CreateOrder(ctx, &orderv1.CreateOrderRequest{
		CustomerId: customer,
		Lines:      []*commonv1.LineItem{{Sku: sku, Quantity: 2, UnitPriceMinor: unitPrice}},
		Currency:   "EUR",
		ShippingAddress: &commonv1.Address{
			Name: "Ada Lovelace", Line1: "1 Analytical Street", City: "Berlin", PostalCode: "10115", CountryCode: "DE",
		},
		PaymentMethodToken: "tok_visa",
		RequestId:          uuid.NewString(),
	})
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	orderID := created.GetOrder().GetOrderId()

	order := awaitTerminal(ctx, t, s, orderID, sagaWait)
	t.Logf("order %s %s %s after CreateOrder, %d steps", orderID, order.GetStatus(), time.Since(placed).Round(time.Millisecond), len(order.GetSteps()))
	if order.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Fatalf("order %s ended %s (%s: %s), want COMPLETED; steps:\n%s",
			orderID, order.GetStatus(), order.GetCancelReason(), order.GetCancelDetail(), steps(order))
	}
	if total := order.GetTotal(); total.GetAmountMinor() != 2*unitPrice || total.GetCurrency() != "EUR" {
		t.Errorf("order total %v, want %d EUR", total, 2*unitPrice)
	}

	auditCtx, cancelAudit := context.WithTimeout(ctx, auditWait)
	defer cancelAudit()
	auditStarted := time.Now()
	rep, err := audit.Await(auditCtx, c, audit.Scope{CustomerIDs: []string{customer}, SKUs: []string{sku}, GatewayURL: s.GatewayURL()}, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if !rep.OK() || rep.Orders != 1 || rep.Completed != 1 {
		t.Fatalf("audit after up to %s: %d orders (%d completed), violations:\n  %s", auditWait, rep.Orders, rep.Completed, strings.Join(rep.Violations, "\n  "))
	}
	t.Logf("audit clean %s after COMPLETED: stock %+v, money %+v", time.Since(auditStarted).Round(time.Millisecond), rep.Stock, rep.Money)
}

// awaitTerminal polls GetOrder until the order is COMPLETED or CANCELLED,
// at most bound.
func awaitTerminal(ctx context.Context, t *testing.T, s *stack.Stack, orderID string, bound time.Duration) *orderv1.Order {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var last *orderv1.Order
	var lastErr error
	for {
		resp, err := s.Clients().Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: orderID})
		if err == nil {
			last = resp.GetOrder()
			if st := last.GetStatus(); st == orderv1.OrderStatus_ORDER_STATUS_COMPLETED || st == orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
				return last
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
			t.Fatalf("order %s not terminal within %s (last error %v); status %s, steps:\n%s",
				orderID, bound, lastErr, last.GetStatus(), steps(last))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func steps(o *orderv1.Order) string {
	var b strings.Builder
	for _, st := range o.GetSteps() {
		fmt.Fprintf(&b, "  %s %s %s\n", st.GetOccurredAt().AsTime().Format(time.RFC3339Nano), st.GetEventType(), st.GetDetail())
	}
	if b.Len() == 0 {
		return "  (none)\n"
	}
	return b.String()
}
