package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/tools/internal/stack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// `sagactl saga <id>` against the suite as five processes on the local real
// stack (Kafka, MariaDB, FerretDB, and Cassandra holding notification's saga
// log): a placed order's timeline shows its six saga events in saga order,
// each from its producer, the five services and COMPLETED; --json agrees.
func TestSagaTimelineOnTheRealStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // a cold build of the five services on 2 cores is part of it
	defer cancel()
	// A deadline no busy machine reaches: the order must complete.
	s := stack.New(t, stack.Options{Env: map[string]map[string]string{suite.Order: {"ORDER_DEADLINE": "10m"}}})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := s.Clients()
	sku := "SAGA-" + strings.ToUpper(uuid.NewString()[:8])
	const unitPrice = 1250
	if _, err := c.Inventory.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{
		Sku: sku, Name: "timeline " + sku, UnitPrice: &commonv1.Money{AmountMinor: unitPrice, Currency: "EUR"},
	}); err != nil {
		t.Fatalf("UpsertProduct: %v", err)
	}
	if _, err := c.Inventory.AddStock(ctx, &inventoryv1.AddStockRequest{Sku: sku, Quantity: 5, RequestId: uuid.NewString()}); err != nil {
		t.Fatalf("AddStock: %v", err)
	}
	resp, err := c.Order.CreateOrder(ctx, &orderv1.CreateOrderRequest{
		CustomerId: uuid.NewString(), Currency: "EUR", PaymentMethodToken: "tok_visa", RequestId: uuid.NewString(),
		Lines: []*commonv1.LineItem{{Sku: sku, Quantity: 2, UnitPriceMinor: unitPrice}},
		ShippingAddress: &commonv1.Address{Name: "Ada Lovelace", Line1: "1 Analytical Street", City: "Berlin",
			PostalCode: "10115", CountryCode: "DE"},
	})
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	orderID := resp.GetOrder().GetOrderId()

	// --wait: until the order is terminal and the saga log has every step.
	code, out, stderr := sagactl(t, stackArgs(t, s, "saga", orderID, "--wait", "3m")...)
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	t.Logf("sagactl saga %s:\n%s", orderID, out)
	if !strings.Contains(out, "status COMPLETED") || !strings.Contains(out, "services order, inventory, payment, shipping, notification") {
		t.Errorf("header lacks the status or the five services:\n%s", out)
	}
	want := [][2]string{{"order", "ORDER_CREATED"}, {"inventory", "STOCK_RESERVED"}, {"payment", "PAYMENT_PROCESSED"},
		{"inventory", "INVENTORY_UPDATED"}, {"shipping", "SHIPMENT_CREATED"}, {"order", "ORDER_COMPLETED"}}
	next := 0
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && next < len(want) && f[3] == want[next][0] && f[4] == want[next][1] {
			next++
		}
	}
	if next != len(want) {
		t.Errorf("found %d of the %d saga events in order (next wanted %v):\n%s", next, len(want), want[min(next, len(want)-1)], out)
	}

	code, out, stderr = sagactl(t, stackArgs(t, s, "saga", "--json", orderID)...)
	var tl struct {
		OrderID  string   `json:"order_id"`
		Status   string   `json:"status"`
		Services []string `json:"services"`
	}
	if err := json.Unmarshal([]byte(out), &tl); err != nil || code != exitOK {
		t.Fatalf("exit %d, --json: %v\n%s\nstderr:\n%s", code, err, out, stderr)
	}
	if tl.OrderID != orderID || tl.Status != "COMPLETED" || len(tl.Services) != 5 {
		t.Errorf("--json: order %s status %s, services %v; want %s COMPLETED from five services\n%s", tl.OrderID, tl.Status, tl.Services, orderID, out)
	}
}
