package order_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

// Every OrderService method under every kind of caller (issue 14), on one
// customer's orders. CancelOrder cancels a fresh order each time, so every
// caller admitted finds one to cancel.
func TestAuthMatrix(t *testing.T) {
	s := start(t)
	owner := testenv.IDFor("order matrix customer")
	o := s.create(t, owner, "")
	client := func(conn *grpc.ClientConn) orderv1.OrderServiceClient { return orderv1.NewOrderServiceClient(conn) }
	servicetest.Matrix{
		Addr:   s.addr,
		Owner:  owner,
		Policy: ports.Policy,
		Cases: []servicetest.MatrixCase{
			{Method: orderv1.OrderService_CreateOrder_FullMethodName, Foreign: codes.PermissionDenied,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).CreateOrder(ctx, createRequest(owner, ""))
					return err
				}},
			{Method: orderv1.OrderService_GetOrder_FullMethodName, Foreign: codes.NotFound,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: o.GetOrderId()})
					return err
				}},
			{Method: orderv1.OrderService_ListOrders_FullMethodName, Foreign: codes.PermissionDenied,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).ListOrders(ctx, &orderv1.ListOrdersRequest{CustomerId: owner, PageSize: 10})
					return err
				}},
			// Without customer_id: everyone's for operators and services, a
			// customer's own for a customer (so the foreign one gets theirs).
			{Method: orderv1.OrderService_ListOrders_FullMethodName, Foreign: codes.OK,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).ListOrders(ctx, &orderv1.ListOrdersRequest{Status: orderv1.OrderStatus_ORDER_STATUS_PENDING, PageSize: 10})
					return err
				}},
			{Method: orderv1.OrderService_WatchOrder_FullMethodName, Foreign: codes.NotFound,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					ctx, cancel := context.WithCancel(ctx)
					defer cancel() // ends the stream after its first answer
					stream, err := client(conn).WatchOrder(ctx, &orderv1.WatchOrderRequest{OrderId: o.GetOrderId()})
					if err != nil {
						return err
					}
					_, err = stream.Recv()
					return err
				}},
			{Method: orderv1.OrderService_CancelOrder_FullMethodName, Foreign: codes.NotFound,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					fresh := s.create(t, owner, "")
					_, err := client(conn).CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: fresh.GetOrderId(), Reason: "matrix"})
					return err
				}},
			{Method: orderv1.OrderService_ListStuckSagas_FullMethodName, Foreign: codes.PermissionDenied,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).ListStuckSagas(ctx, &orderv1.ListStuckSagasRequest{})
					return err
				}},
		},
	}.Run(t)
}
