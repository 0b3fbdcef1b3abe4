package order_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/services/order"
)

// The order service on the real stack with ORDER_WEB_ADDR set: browsers'
// protocols reach the same handlers, with the same token checks and
// validation, and WatchOrder streams the saga over Connect and gRPC-Web.
func TestOrderServiceAnswersBrowserProtocols(t *testing.T) {
	const origin = "http://127.0.0.1:8090"
	cfg := testConfig(t, func(c *order.Config) {
		c.WebAddr, c.WebAllowedOrigins = "127.0.0.1:0", []string{origin}
	})
	clk := clock.NewManual(clock.System{}.Now())
	pub := bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(cfg.KafkaConfig.TopicPrefix))
	t.Cleanup(func() { pub.Close() })
	inst := servicetest.Launch(t, service.Runtime{Clock: clk, SharedTelemetry: true, Registry: prometheus.NewRegistry()},
		func(ctx context.Context, rt service.Runtime) error { return order.Run(ctx, cfg, rt) })
	conn := inst.WaitReady()
	if inst.WebAddr() == "" {
		t.Fatal("no web listener although WebAddr is set")
	}
	base := "http://" + inst.WebAddr()
	s := &suite{dsn: cfg.MySQLDSN, client: orderv1.NewOrderServiceClient(conn), clock: clk, pub: pub, addr: conn.Target()}

	customerID := testenv.IDFor("customer web")
	customer := servicetest.Token(t, auth.Principal{Subject: customerID, Roles: []auth.Role{auth.RoleCustomer}})
	placed := s.create(t, customerID, "")

	t.Run("Connect JSON GetOrder with and without a token", func(t *testing.T) {
		body := `{"orderId":"` + placed.GetOrderId() + `"}`
		code, out := connectJSON(t, base+"/sagasuite.order.v1.OrderService/GetOrder", customer, body)
		got, _ := out["order"].(map[string]any)
		if code != http.StatusOK || got["orderId"] != placed.GetOrderId() || got["status"] != "ORDER_STATUS_PENDING" {
			t.Errorf("with the owner's token: %d %v", code, out)
		}
		code, out = connectJSON(t, base+"/sagasuite.order.v1.OrderService/GetOrder", "", body)
		if code != http.StatusUnauthorized || out["code"] != "unauthenticated" {
			t.Errorf("without a token: %d %v, want 401 unauthenticated", code, out)
		}
		other := servicetest.Token(t, auth.Principal{Subject: testenv.IDFor("customer web other"), Roles: []auth.Role{auth.RoleCustomer}})
		if code, out = connectJSON(t, base+"/sagasuite.order.v1.OrderService/GetOrder", other, body); code == http.StatusOK {
			t.Errorf("another customer read the order: %v", out)
		}
		code, out = connectJSON(t, base+"/sagasuite.order.v1.OrderService/GetOrder", customer, `{"orderId":"42"}`)
		if msg, _ := out["message"].(string); code != http.StatusBadRequest || out["code"] != "invalid_argument" || !strings.Contains(msg, "order_id") {
			t.Errorf("bad order id: %d %v, want invalid_argument naming order_id", code, out)
		}
	})

	t.Run("gRPC-Web binary GetOrder", func(t *testing.T) {
		client := connect.NewClient[orderv1.GetOrderRequest, orderv1.GetOrderResponse](http.DefaultClient,
			base+orderv1.OrderService_GetOrder_FullMethodName, connect.WithGRPCWeb())
		req := connect.NewRequest(&orderv1.GetOrderRequest{OrderId: placed.GetOrderId()})
		req.Header().Set("Authorization", "Bearer "+customer)
		resp, err := client.CallUnary(context.Background(), req)
		if err != nil || resp.Msg.GetOrder().GetCustomerId() != customerID {
			t.Fatalf("GetOrder over gRPC-Web: %v, %v", resp, err)
		}
	})

	for name, opts := range map[string][]connect.ClientOption{"Connect": nil, "gRPC-Web": {connect.WithGRPCWeb()}} {
		t.Run("WatchOrder over "+name+" follows the saga to COMPLETED", func(t *testing.T) {
			o := s.create(t, customerID, "")
			client := connect.NewClient[orderv1.WatchOrderRequest, orderv1.WatchOrderResponse](http.DefaultClient,
				base+orderv1.OrderService_WatchOrder_FullMethodName, opts...)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			req := connect.NewRequest(&orderv1.WatchOrderRequest{OrderId: o.GetOrderId()})
			req.Header().Set("Authorization", "Bearer "+customer)
			stream, err := client.CallServerStream(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			if !stream.Receive() || stream.Msg().GetOrder().GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
				t.Fatalf("first snapshot %v (%v), want PENDING", stream.Msg(), stream.Err())
			}
			s.publish(t, o, &eventsv1.StockReserved{ReservationId: events.NewID(), Lines: lines(), Total: total(),
				PaymentMethodToken: "tok_visa", ShippingAddress: address()})
			s.publish(t, o, &eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "WEB1"})
			var last *orderv1.Order
			updates := 1
			for stream.Receive() {
				last, updates = stream.Msg().GetOrder(), updates+1
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream ended with %v after %d updates", err, updates)
			}
			if updates < 2 || last.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_COMPLETED {
				t.Errorf("%d updates, last %v; want at least 2, ending COMPLETED", updates, last)
			}
		})
	}

	t.Run("CORS preflight for the console's origin only", func(t *testing.T) {
		for _, tc := range []struct {
			origin string
			allow  string
		}{{origin, origin}, {"http://127.0.0.1:9999", ""}} {
			req, err := http.NewRequest(http.MethodOptions, base+orderv1.OrderService_GetOrder_FullMethodName, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.allow {
				t.Errorf("preflight from %s: Allow-Origin %q, want %q", tc.origin, got, tc.allow)
			}
			if tc.allow != "" && !strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization") {
				t.Errorf("preflight from %s: Allow-Headers %q lacks authorization", tc.origin, resp.Header.Get("Access-Control-Allow-Headers"))
			}
		}
	})
}

// connectJSON makes a Connect unary call with a JSON body, as curl would.
func connectJSON(t *testing.T, url, token, body string) (int, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return servicetest.ConnectJSON(ctx, t, url, token, body)
}
