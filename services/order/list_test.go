package order_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

// ListOrders across customers (issue 18): an operator lists everyone's
// orders newest first, filtered by status, cancel reason and creation time,
// page by page; a customer still sees only their own, whatever they ask; a
// bad filter is InvalidArgument naming its field. A fresh database, so
// "every order" is exactly the ones made here.
func TestListOrdersAcrossCustomers(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	alice, bob := testenv.IDFor("list alice"), testenv.IDFor("list bob")

	// Oldest first: a1 b1 a2 b2 a3, one injected-clock millisecond apart.
	created := map[string]*orderv1.Order{}
	for _, name := range []string{"a1", "b1", "a2", "b2", "a3"} {
		s.clock.Advance(time.Millisecond)
		customer := alice
		if name[0] == 'b' {
			customer = bob
		}
		created[name] = s.create(t, customer, "")
	}
	id := func(name string) string { return created[name].GetOrderId() }
	for _, name := range []string{"b1", "a2"} {
		if _, err := s.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: id(name), Reason: "changed my mind"}); err != nil {
			t.Fatalf("cancel %s: %v", name, err)
		}
	}
	s.publish(t, created["a3"], &eventsv1.PaymentFailed{Reason: eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_INSUFFICIENT_FUNDS, Detail: "declined"})
	s.seen.wait(t, id("a3"), eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)

	operator := orderv1.NewOrderServiceClient(servicetest.Dial(t, s.addr,
		servicetest.Token(t, auth.Principal{Subject: "list-operator", Roles: []auth.Role{auth.RoleOperator}})))
	asAlice := orderv1.NewOrderServiceClient(servicetest.Dial(t, s.addr,
		servicetest.Token(t, auth.Principal{Subject: alice, Roles: []auth.Role{auth.RoleCustomer}})))

	// listAll pages through with page size 2, the same filters on every page.
	listAll := func(client orderv1.OrderServiceClient, req *orderv1.ListOrdersRequest) []string {
		t.Helper()
		var names []string
		req.PageSize = 2
		for page := 0; ; page++ {
			if page > len(created) {
				t.Fatalf("paging %v does not end", req)
			}
			resp, err := client.ListOrders(ctx, req)
			if err != nil {
				t.Fatalf("ListOrders(%v): %v", req, err)
			}
			if len(resp.GetOrders()) > 2 {
				t.Errorf("page of %d orders, asked for 2", len(resp.GetOrders()))
			}
			for _, o := range resp.GetOrders() {
				name := ""
				for n, c := range created {
					if c.GetOrderId() == o.GetOrderId() {
						name = n
					}
				}
				names = append(names, name)
			}
			if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
				return names
			}
		}
	}
	cancelled := orderv1.OrderStatus_ORDER_STATUS_CANCELLED
	for _, tc := range []struct {
		name   string
		client orderv1.OrderServiceClient
		req    *orderv1.ListOrdersRequest
		want   []string
	}{
		{"operator, everyone", operator, &orderv1.ListOrdersRequest{}, []string{"a3", "b2", "a2", "b1", "a1"}},
		{"operator, cancelled", operator, &orderv1.ListOrdersRequest{Status: cancelled}, []string{"a3", "a2", "b1"}},
		{"operator, pending", operator, &orderv1.ListOrdersRequest{Status: orderv1.OrderStatus_ORDER_STATUS_PENDING}, []string{"b2", "a1"}},
		{"operator, customer requested", operator, &orderv1.ListOrdersRequest{
			CancelReason: eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED}, []string{"a2", "b1"}},
		{"operator, payment failed and cancelled", operator, &orderv1.ListOrdersRequest{Status: cancelled,
			CancelReason: eventsv1.CancelReason_CANCEL_REASON_PAYMENT_FAILED}, []string{"a3"}},
		{"operator, created in [a2, a3)", operator, &orderv1.ListOrdersRequest{
			CreatedAfter: created["a2"].GetCreateTime(), CreatedBefore: created["a3"].GetCreateTime()}, []string{"b2", "a2"}},
		{"operator, bob's cancelled", operator, &orderv1.ListOrdersRequest{CustomerId: bob, Status: cancelled}, []string{"b1"}},
		{"alice, no customer id: her own", asAlice, &orderv1.ListOrdersRequest{}, []string{"a3", "a2", "a1"}},
		{"alice, cancelled", asAlice, &orderv1.ListOrdersRequest{Status: cancelled}, []string{"a3", "a2"}},
		{"alice, created since b1", asAlice, &orderv1.ListOrdersRequest{CreatedAfter: created["b1"].GetCreateTime()}, []string{"a3", "a2"}},
	} {
		if got := listAll(tc.client, tc.req); !slices.Equal(got, tc.want) {
			t.Errorf("%s: listed %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := asAlice.ListOrders(ctx, &orderv1.ListOrdersRequest{CustomerId: bob}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("alice listing bob's orders: %v, want PermissionDenied", err)
	}

	for _, tc := range []struct {
		name  string
		req   *orderv1.ListOrdersRequest
		field string
	}{
		{"unknown status", &orderv1.ListOrdersRequest{Status: 99}, "status"},
		{"unknown reason", &orderv1.ListOrdersRequest{CancelReason: 42}, "cancel_reason"},
		{"a reason with status COMPLETED", &orderv1.ListOrdersRequest{Status: orderv1.OrderStatus_ORDER_STATUS_COMPLETED,
			CancelReason: eventsv1.CancelReason_CANCEL_REASON_TIMEOUT}, "cancel_reason"},
		{"an empty time range", &orderv1.ListOrdersRequest{CreatedAfter: created["a3"].GetCreateTime(),
			CreatedBefore: created["a1"].GetCreateTime()}, "created_before"},
		{"an unrepresentable time", &orderv1.ListOrdersRequest{CreatedAfter: &timestamppb.Timestamp{Seconds: 1, Nanos: -5}}, "created_after"},
		{"a customer id that is no UUID", &orderv1.ListOrdersRequest{CustomerId: "bob"}, "customer_id"},
	} {
		_, err := operator.ListOrders(ctx, tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.field) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tc.name, err, tc.field)
			continue
		}
		if fields := violatedFields(err); !slices.Contains(fields, tc.field) {
			t.Errorf("%s: BadRequest names %v, want %s (the console puts it on that input)", tc.name, fields, tc.field)
		}
	}
}

// violatedFields are the field paths of err's BadRequest detail.
func violatedFields(err error) []string {
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}
