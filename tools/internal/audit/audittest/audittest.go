// Package audittest serves hand-built API responses through the five
// services' real gRPC interfaces, so the audit and sagactl are tested on the
// wire without the services: a World is what the services would answer, and
// Consistent builds one in which everything adds up.
package audittest

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
)

// World is what the services answer. Lists are paged PageSize at a time
// (default 2, so every listing crosses pages), whatever the client asks.
type World struct {
	Orders    []*orderv1.Order
	Stock     []*inventoryv1.Stock
	Payments  []*paymentv1.Payment
	Shipments []*shippingv1.Shipment
	SagaLogs  map[string][]*eventsv1.Envelope
	PageSize  int
	// Gateway is the payment gateway's ledger by order id (ServeGateway).
	Gateway map[string]*GatewayAccount
}

// GatewayAccount is one order's account at the gateway, as the simulated
// gateway's GET /v1/accounts/{key} answers it.
type GatewayAccount struct {
	Key     string          `json:"key"`
	Charge  *GatewayCharge  `json:"charge"`
	Refunds []GatewayRefund `json:"refunds"`
	Net     int64           `json:"net_minor"`
}

// GatewayCharge is a charge in the gateway's ledger.
type GatewayCharge struct {
	Status      string `json:"status"` // succeeded, declined
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

// GatewayRefund is a refund in the gateway's ledger.
type GatewayRefund struct {
	AmountMinor int64 `json:"amount_minor"`
}

// ServeGateway answers the gateway's account lookups from w.Gateway (an
// order it does not hold has an empty account) until the test ends, and
// returns its base URL.
func ServeGateway(t testing.TB, w *World) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/accounts/{key}", func(rw http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		a := w.Gateway[key]
		if a == nil {
			a = &GatewayAccount{Key: key, Refunds: []GatewayRefund{}}
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(a)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Serve answers the five APIs from w on one loopback listener until the test
// ends, and returns its address (the same for every service).
func Serve(t testing.TB, w *World) string {
	t.Helper()
	return ServeWith(t, w)
}

// ServeWith is Serve with server options (e.g. an interceptor that checks
// the callers' tokens).
func ServeWith(t testing.TB, w *World, opts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer(opts...)
	orderv1.RegisterOrderServiceServer(srv, orders{w: w})
	inventoryv1.RegisterInventoryServiceServer(srv, inventory{w: w})
	paymentv1.RegisterPaymentServiceServer(srv, payments{w: w})
	shippingv1.RegisterShippingServiceServer(srv, shipping{w: w})
	notificationv1.RegisterNotificationServiceServer(srv, notification{w: w})
	go func() { _ = srv.Serve(ln) }() // returns when the server stops
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// page returns items[token:token+size] and the next token.
func page[T any](w *World, items []T, token string) ([]T, string, error) {
	size := w.PageSize
	if size <= 0 {
		size = 2
	}
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", status.Errorf(codes.InvalidArgument, "page_token %q is not valid", token)
		}
		start = n
	}
	end := min(start+size, len(items))
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[start:end], next, nil
}

func ofCustomer[T interface{ GetCustomerId() string }](items []T, customer string) []T {
	var out []T
	for _, it := range items {
		if it.GetCustomerId() == customer {
			out = append(out, it)
		}
	}
	return out
}

type orders struct {
	orderv1.UnimplementedOrderServiceServer
	w *World
}

func (s orders) GetOrder(_ context.Context, r *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
	for _, o := range s.w.Orders {
		if o.GetOrderId() == r.GetOrderId() {
			return &orderv1.GetOrderResponse{Order: o}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "order %s not found", r.GetOrderId())
}

// ListOrders leaves the steps out, as a list may: the audit must ask GetOrder.
func (s orders) ListOrders(_ context.Context, r *orderv1.ListOrdersRequest) (*orderv1.ListOrdersResponse, error) {
	items, next, err := page(s.w, ofCustomer(s.w.Orders, r.GetCustomerId()), r.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := make([]*orderv1.Order, len(items))
	for i, o := range items {
		o = proto.Clone(o).(*orderv1.Order)
		o.Steps = nil
		out[i] = o
	}
	return &orderv1.ListOrdersResponse{Orders: out, NextPageToken: next}, nil
}

type inventory struct {
	inventoryv1.UnimplementedInventoryServiceServer
	w *World
}

func (s inventory) GetStock(_ context.Context, r *inventoryv1.GetStockRequest) (*inventoryv1.GetStockResponse, error) {
	for _, st := range s.w.Stock {
		if st.GetSku() == r.GetSku() {
			return &inventoryv1.GetStockResponse{Stock: st}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "product %s not found", r.GetSku())
}

type payments struct {
	paymentv1.UnimplementedPaymentServiceServer
	w *World
}

func (s payments) ListPayments(_ context.Context, r *paymentv1.ListPaymentsRequest) (*paymentv1.ListPaymentsResponse, error) {
	items, next, err := page(s.w, ofCustomer(s.w.Payments, r.GetCustomerId()), r.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &paymentv1.ListPaymentsResponse{Payments: items, NextPageToken: next}, nil
}

type shipping struct {
	shippingv1.UnimplementedShippingServiceServer
	w *World
}

func (s shipping) ListShipments(_ context.Context, r *shippingv1.ListShipmentsRequest) (*shippingv1.ListShipmentsResponse, error) {
	items, next, err := page(s.w, ofCustomer(s.w.Shipments, r.GetCustomerId()), r.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &shippingv1.ListShipmentsResponse{Shipments: items, NextPageToken: next}, nil
}

type notification struct {
	notificationv1.UnimplementedNotificationServiceServer
	w *World
}

func (s notification) GetSagaLog(_ context.Context, r *notificationv1.GetSagaLogRequest) (*notificationv1.GetSagaLogResponse, error) {
	return &notificationv1.GetSagaLogResponse{OrderId: r.GetOrderId(), Events: s.w.SagaLogs[r.GetOrderId()]}, nil
}

// Fixed ids of the Consistent world.
const (
	Customer        = "0190a000-0000-7000-8000-000000000001"
	OrderCompleted  = "0190a000-0000-7000-8000-0000000000a1" // paid, shipped
	OrderRefunded   = "0190a000-0000-7000-8000-0000000000a2" // paid, shipment failed, refunded, stock restored
	OrderOutOfStock = "0190a000-0000-7000-8000-0000000000a3" // nothing reserved
	OrderDeclined   = "0190a000-0000-7000-8000-0000000000a4" // reserved, payment failed, released
	SKUWidget       = "WIDGET-1"
	SKUGadget       = "GADGET-2"
)

// Consistent is a world in which every check passes: four terminal orders of
// one customer covering the happy path and three compensations, stock of
// two SKUs, payments, shipments and complete saga logs. Tests break one thing.
func Consistent() *World {
	w := &World{SagaLogs: map[string][]*eventsv1.Envelope{}}
	addOrder := func(id string, st orderv1.OrderStatus, lines []*commonv1.LineItem, steps ...eventsv1.EventType) *orderv1.Order {
		var total int64
		for _, l := range lines {
			total += int64(l.GetQuantity()) * l.GetUnitPriceMinor()
		}
		o := &orderv1.Order{
			OrderId: id, CustomerId: Customer, Status: st, Lines: lines,
			Total:    &commonv1.Money{AmountMinor: total, Currency: "EUR"},
			Deadline: timestamppb.New(timestamppb.Now().AsTime()),
		}
		for i, typ := range steps {
			eventID := strings.Replace(id, "0190a000", "0190b00"+strconv.Itoa(i), 1)
			o.Steps = append(o.Steps, &orderv1.Step{EventType: typ, EventId: eventID})
			w.SagaLogs[id] = append(w.SagaLogs[id], &eventsv1.Envelope{EventId: eventID, Type: typ, OrderId: id, CustomerId: Customer})
		}
		w.Orders = append(w.Orders, o)
		return o
	}
	widgets := func(n int32) []*commonv1.LineItem {
		return []*commonv1.LineItem{{Sku: SKUWidget, Quantity: n, UnitPriceMinor: 1500}}
	}
	completed := addOrder(OrderCompleted, orderv1.OrderStatus_ORDER_STATUS_COMPLETED,
		append(widgets(2), &commonv1.LineItem{Sku: SKUGadget, Quantity: 1, UnitPriceMinor: 990}),
		eventsv1.EventType_EVENT_TYPE_ORDER_CREATED, eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED,
		eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED, eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED,
		eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED, eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED)
	refunded := addOrder(OrderRefunded, orderv1.OrderStatus_ORDER_STATUS_CANCELLED, widgets(3),
		eventsv1.EventType_EVENT_TYPE_ORDER_CREATED, eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED,
		eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED, eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED,
		eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED, eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED,
		eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED)
	addOrder(OrderOutOfStock, orderv1.OrderStatus_ORDER_STATUS_CANCELLED, widgets(500),
		eventsv1.EventType_EVENT_TYPE_ORDER_CREATED, eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK,
		eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)
	declined := addOrder(OrderDeclined, orderv1.OrderStatus_ORDER_STATUS_CANCELLED, widgets(1),
		eventsv1.EventType_EVENT_TYPE_ORDER_CREATED, eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED,
		eventsv1.EventType_EVENT_TYPE_PAYMENT_FAILED, eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED,
		eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED)
	refunded.CancelReason = eventsv1.CancelReason_CANCEL_REASON_SHIPMENT_FAILED
	w.Order(OrderOutOfStock).CancelReason = eventsv1.CancelReason_CANCEL_REASON_OUT_OF_STOCK
	declined.CancelReason = eventsv1.CancelReason_CANCEL_REASON_PAYMENT_FAILED

	// Widgets: 100 added; 2 kept by the completed order, 3 sold then
	// restored, 1 reserved then released. Gadgets: 10 added, 1 kept.
	w.Stock = []*inventoryv1.Stock{
		{Sku: SKUWidget, Added: 100, Available: 98, Reserved: 0, Sold: 5, Restored: 3},
		{Sku: SKUGadget, Added: 10, Available: 9, Reserved: 0, Sold: 1, Restored: 0},
	}
	w.Payments = []*paymentv1.Payment{
		{PaymentId: "pay-completed", OrderId: completed.GetOrderId(), CustomerId: Customer,
			Amount: proto.Clone(completed.GetTotal()).(*commonv1.Money), Status: paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED},
		{PaymentId: "pay-refunded", OrderId: refunded.GetOrderId(), CustomerId: Customer,
			Amount: proto.Clone(refunded.GetTotal()).(*commonv1.Money), Status: paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED,
			Refunds: []*paymentv1.Refund{{RefundId: "refund-1", Amount: proto.Clone(refunded.GetTotal()).(*commonv1.Money),
				Reason: eventsv1.RefundReason_REFUND_REASON_SHIPMENT_FAILED}}},
		{PaymentId: "pay-declined", OrderId: declined.GetOrderId(), CustomerId: Customer,
			Amount: proto.Clone(declined.GetTotal()).(*commonv1.Money), Status: paymentv1.PaymentStatus_PAYMENT_STATUS_FAILED,
			FailureReason: eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_DECLINED},
	}
	// The gateway: the completed order's charge kept, the refunded one's
	// charge and refund, the declined one's declined charge.
	w.Gateway = map[string]*GatewayAccount{
		completed.GetOrderId(): {Key: completed.GetOrderId(), Charge: &GatewayCharge{Status: "succeeded",
			AmountMinor: completed.GetTotal().GetAmountMinor(), Currency: "EUR"}, Refunds: []GatewayRefund{}, Net: completed.GetTotal().GetAmountMinor()},
		refunded.GetOrderId(): {Key: refunded.GetOrderId(), Charge: &GatewayCharge{Status: "succeeded",
			AmountMinor: refunded.GetTotal().GetAmountMinor(), Currency: "EUR"},
			Refunds: []GatewayRefund{{AmountMinor: refunded.GetTotal().GetAmountMinor()}}, Net: 0},
		declined.GetOrderId(): {Key: declined.GetOrderId(), Charge: &GatewayCharge{Status: "declined",
			AmountMinor: declined.GetTotal().GetAmountMinor(), Currency: "EUR"}, Refunds: []GatewayRefund{}, Net: 0},
	}
	w.Shipments = []*shippingv1.Shipment{
		{ShipmentId: "ship-completed", OrderId: completed.GetOrderId(), CustomerId: Customer, Status: shippingv1.ShipmentStatus_SHIPMENT_STATUS_CREATED},
		{ShipmentId: "ship-failed", OrderId: refunded.GetOrderId(), CustomerId: Customer, Status: shippingv1.ShipmentStatus_SHIPMENT_STATUS_FAILED},
	}
	return w
}

// Order returns the world's order with id (nil when absent), to change it.
func (w *World) Order(id string) *orderv1.Order {
	i := slices.IndexFunc(w.Orders, func(o *orderv1.Order) bool { return o.GetOrderId() == id })
	if i < 0 {
		return nil
	}
	return w.Orders[i]
}

// Payment returns the world's payment of order id (nil when absent).
func (w *World) Payment(orderID string) *paymentv1.Payment {
	i := slices.IndexFunc(w.Payments, func(p *paymentv1.Payment) bool { return p.GetOrderId() == orderID })
	if i < 0 {
		return nil
	}
	return w.Payments[i]
}

// StockOf returns the world's stock of sku (nil when absent).
func (w *World) StockOf(sku string) *inventoryv1.Stock {
	i := slices.IndexFunc(w.Stock, func(s *inventoryv1.Stock) bool { return s.GetSku() == sku })
	if i < 0 {
		return nil
	}
	return w.Stock[i]
}
