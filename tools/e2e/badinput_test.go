package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/google/uuid"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
)

// Every gRPC method of every service refuses bad input with InvalidArgument
// naming the field, and nothing is written.
func TestBadInputIsRefusedNamingTheFieldAndWritesNothing(t *testing.T) {
	w := newWorld(t, 10*time.Minute, nil)
	c := w.s.Clients()
	sku := w.product(3)
	cust := w.customer()
	good := func() *orderv1.CreateOrderRequest { return w.request(orderSpec{customer: cust, sku: sku, qty: 1}) }
	withReq := func(mut func(r *orderv1.CreateOrderRequest)) *orderv1.CreateOrderRequest {
		r := good()
		mut(r)
		return r
	}
	ctx := w.ctx
	cases := []struct {
		method, field string
		call          func(context.Context) error
	}{
		{"CreateOrder", "customer_id", func(ctx context.Context) error {
			_, err := c.Order.CreateOrder(ctx, withReq(func(r *orderv1.CreateOrderRequest) { r.CustomerId = "not-a-uuid" }))
			return err
		}},
		{"CreateOrder", "lines", func(ctx context.Context) error {
			_, err := c.Order.CreateOrder(ctx, withReq(func(r *orderv1.CreateOrderRequest) { r.Lines = nil }))
			return err
		}},
		{"CreateOrder", "quantity", func(ctx context.Context) error {
			_, err := c.Order.CreateOrder(ctx, withReq(func(r *orderv1.CreateOrderRequest) { r.Lines[0].Quantity = 0 }))
			return err
		}},
		{"CreateOrder", "currency", func(ctx context.Context) error {
			_, err := c.Order.CreateOrder(ctx, withReq(func(r *orderv1.CreateOrderRequest) { r.Currency = "euro" }))
			return err
		}},
		{"CreateOrder", "shipping_address", func(ctx context.Context) error {
			_, err := c.Order.CreateOrder(ctx, withReq(func(r *orderv1.CreateOrderRequest) { r.ShippingAddress = nil }))
			return err
		}},
		{"CreateOrder", "country_code", func(ctx context.Context) error {
			_, err := c.Order.CreateOrder(ctx, withReq(func(r *orderv1.CreateOrderRequest) { r.ShippingAddress.CountryCode = "Germany" }))
			return err
		}},
		{"CreateOrder", "payment_method_token", func(ctx context.Context) error {
			_, err := c.Order.CreateOrder(ctx, withReq(func(r *orderv1.CreateOrderRequest) { r.PaymentMethodToken = "" }))
			return err
		}},
		{"GetOrder", "order_id", func(ctx context.Context) error {
			_, err := c.Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: "42"})
			return err
		}},
		{"ListOrders", "page_size", func(ctx context.Context) error {
			_, err := c.Order.ListOrders(ctx, &orderv1.ListOrdersRequest{CustomerId: cust, PageSize: -1})
			return err
		}},
		{"ListOrders", "page_token", func(ctx context.Context) error {
			_, err := c.Order.ListOrders(ctx, &orderv1.ListOrdersRequest{CustomerId: cust, PageToken: "garbage!"})
			return err
		}},
		{"CancelOrder", "order_id", func(ctx context.Context) error {
			_, err := c.Order.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: ""})
			return err
		}},
		{"WatchOrder", "order_id", func(ctx context.Context) error {
			stream, err := c.Order.WatchOrder(ctx, &orderv1.WatchOrderRequest{OrderId: "nope"})
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}},
		{"UpsertProduct", "sku", func(ctx context.Context) error {
			_, err := c.Inventory.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{Sku: "bad sku", Name: "x",
				UnitPrice: &commonv1.Money{AmountMinor: 1, Currency: "EUR"}})
			return err
		}},
		{"UpsertProduct", "unit_price", func(ctx context.Context) error {
			_, err := c.Inventory.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{Sku: "E2E-NEVER", Name: "x"})
			return err
		}},
		{"AddStock", "quantity", func(ctx context.Context) error {
			_, err := c.Inventory.AddStock(ctx, &inventoryv1.AddStockRequest{Sku: sku, Quantity: -5, RequestId: uuid.NewString()})
			return err
		}},
		{"AddStock", "request_id", func(ctx context.Context) error {
			_, err := c.Inventory.AddStock(ctx, &inventoryv1.AddStockRequest{Sku: sku, Quantity: 5, RequestId: "again"})
			return err
		}},
		{"GetStock", "sku", func(ctx context.Context) error {
			_, err := c.Inventory.GetStock(ctx, &inventoryv1.GetStockRequest{Sku: ""})
			return err
		}},
		{"ListProducts", "page_size", func(ctx context.Context) error {
			_, err := c.Inventory.ListProducts(ctx, &inventoryv1.ListProductsRequest{PageSize: 100000})
			return err
		}},
		{"GetPayment", "order_id", func(ctx context.Context) error {
			_, err := c.Payment.GetPayment(ctx, &paymentv1.GetPaymentRequest{OrderId: "x"})
			return err
		}},
		{"ListPayments", "customer_id", func(ctx context.Context) error {
			_, err := c.Payment.ListPayments(ctx, &paymentv1.ListPaymentsRequest{CustomerId: "x"})
			return err
		}},
		{"GetShipment", "order_id", func(ctx context.Context) error {
			_, err := c.Shipping.GetShipment(ctx, &shippingv1.GetShipmentRequest{OrderId: "x"})
			return err
		}},
		{"ListShipments", "customer_id", func(ctx context.Context) error {
			_, err := c.Shipping.ListShipments(ctx, &shippingv1.ListShipmentsRequest{CustomerId: ""})
			return err
		}},
		{"ListNotifications", "customer_id", func(ctx context.Context) error {
			_, err := c.Notification.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{CustomerId: "x"})
			return err
		}},
		{"GetSagaLog", "order_id", func(ctx context.Context) error {
			_, err := c.Notification.GetSagaLog(ctx, &notificationv1.GetSagaLogRequest{OrderId: "x"})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.method+"/"+tc.field, func(t *testing.T) {
			err := tc.call(ctx)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.field) {
				t.Errorf("%s with a bad %s: %v, want InvalidArgument naming %s", tc.method, tc.field, err, tc.field)
			}
		})
	}

	// Nothing was written: no order for the customer, the refused product does
	// not exist, and the stock is what it was.
	if resp, err := c.Order.ListOrders(ctx, &orderv1.ListOrdersRequest{CustomerId: cust}); err != nil || len(resp.GetOrders()) != 0 {
		t.Errorf("orders after refused CreateOrders: %v, %v; want none", resp.GetOrders(), err)
	}
	if _, err := c.Inventory.GetStock(ctx, &inventoryv1.GetStockRequest{Sku: "E2E-NEVER"}); status.Code(err) != codes.NotFound {
		t.Errorf("refused product: GetStock = %v, want NotFound", err)
	}
	if st := w.stock(sku); st.GetAdded() != 3 || st.GetAvailable() != 3 {
		t.Errorf("stock after refused AddStocks: %+v, want 3 added, 3 available", st)
	}
}
