package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// State is a service's end state as its gRPC read APIs show it, keyed so
// encoding/json writes it in a stable order: products by SKU, the rest
// (orders with their step history, payments, ...) by order id (and notifications by customer id). Absent entries (NotFound)
// are JSON null.
type State struct {
	Service       string                     `json:"service"`
	Orders        map[string]json.RawMessage `json:"orders,omitempty"`
	Products      []json.RawMessage          `json:"products,omitempty"`
	Payments      map[string]json.RawMessage `json:"payments,omitempty"`
	Shipments     map[string]json.RawMessage `json:"shipments,omitempty"`
	SagaLogs      map[string]json.RawMessage `json:"saga_logs,omitempty"`
	Notifications map[string]json.RawMessage `json:"notifications,omitempty"`
}

// compactProto is m as compact protojson with stable bytes.
func compactProto(m proto.Message) (json.RawMessage, error) { return capture.StableJSON(m) }

// idsOf returns the sorted distinct order and customer ids of the recording.
func idsOf(recs []capture.Record) (orders, customers []string) {
	seenO, seenC := map[string]bool{}, map[string]bool{}
	for _, r := range recs {
		env, err := r.Event()
		if err != nil {
			continue
		}
		if id := env.GetOrderId(); id != "" && !seenO[id] {
			seenO[id] = true
			orders = append(orders, id)
		}
		if id := env.GetCustomerId(); id != "" && !seenC[id] {
			seenC[id] = true
			customers = append(customers, id)
		}
	}
	slices.Sort(orders)
	slices.Sort(customers)
	return orders, customers
}

// readState reads service's end state for the recording's orders.
func readState(ctx context.Context, st *devstack.Stack, service string, recs []capture.Record) ([]byte, error) {
	conn, err := grpc.NewClient(st.GRPC.Of(service), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(suite.PerRPCCredentials(st.ToolToken("sagactl-replay"))))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conns := suite.Clients{Order: orderv1.NewOrderServiceClient(conn), Inventory: inventoryv1.NewInventoryServiceClient(conn), Payment: paymentv1.NewPaymentServiceClient(conn),
		Shipping: shippingv1.NewShippingServiceClient(conn), Notification: notificationv1.NewNotificationServiceClient(conn)}
	orders, customers := idsOf(recs)
	s := State{Service: service}
	// get reads one entry; NotFound is null, not an error.
	get := func(dst map[string]json.RawMessage, key string, call func() (proto.Message, error)) error {
		m, err := call()
		if status.Code(err) == codes.NotFound {
			dst[key] = json.RawMessage("null")
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s of %s: %w", service, key, err)
		}
		if dst[key], err = compactProto(m); err != nil {
			return err
		}
		return nil
	}
	switch service {
	case suite.Order:
		// Steps are in arrival order, which the replay's delivery order
		// fixes: kept as the service has them.
		s.Orders = map[string]json.RawMessage{}
		for _, id := range orders {
			if err := get(s.Orders, id, func() (proto.Message, error) {
				r, err := conns.Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: id})
				return r.GetOrder(), err
			}); err != nil {
				return nil, err
			}
		}
	case suite.Inventory:
		for token := ""; ; {
			resp, err := conns.Inventory.ListProducts(ctx, &inventoryv1.ListProductsRequest{PageSize: 500, PageToken: token})
			if err != nil {
				return nil, fmt.Errorf("ListProducts: %w", err)
			}
			for _, p := range resp.GetProducts() {
				b, err := compactProto(p)
				if err != nil {
					return nil, err
				}
				s.Products = append(s.Products, b)
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
	case suite.Payment:
		s.Payments = map[string]json.RawMessage{}
		for _, id := range orders {
			if err := get(s.Payments, id, func() (proto.Message, error) {
				r, err := conns.Payment.GetPayment(ctx, &paymentv1.GetPaymentRequest{OrderId: id})
				return r.GetPayment(), err
			}); err != nil {
				return nil, err
			}
		}
	case suite.Shipping:
		s.Shipments = map[string]json.RawMessage{}
		for _, id := range orders {
			if err := get(s.Shipments, id, func() (proto.Message, error) {
				r, err := conns.Shipping.GetShipment(ctx, &shippingv1.GetShipmentRequest{OrderId: id})
				return r.GetShipment(), err
			}); err != nil {
				return nil, err
			}
		}
	case suite.Notification:
		s.SagaLogs, s.Notifications = map[string]json.RawMessage{}, map[string]json.RawMessage{}
		for _, id := range orders {
			if err := get(s.SagaLogs, id, func() (proto.Message, error) {
				return conns.Notification.GetSagaLog(ctx, &notificationv1.GetSagaLogRequest{OrderId: id})
			}); err != nil {
				return nil, err
			}
		}
		for _, id := range customers {
			all := &notificationv1.ListNotificationsResponse{}
			for token := ""; ; {
				resp, err := conns.Notification.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{CustomerId: id, PageSize: 100, PageToken: token})
				if err != nil {
					return nil, fmt.Errorf("ListNotifications of %s: %w", id, err)
				}
				all.Notifications = append(all.Notifications, resp.GetNotifications()...)
				if token = resp.GetNextPageToken(); token == "" {
					break
				}
			}
			b, err := compactProto(all)
			if err != nil {
				return nil, err
			}
			s.Notifications[id] = b
		}
	}
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
