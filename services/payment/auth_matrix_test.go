package payment_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	"github.com/sagasuite/sagasuite/services/payment/internal/ports"
)

// Every PaymentService method under every kind of caller (issue 14), on a
// payment the saga made for one customer.
func TestAuthMatrix(t *testing.T) {
	s := start(t)
	o := newOrder(t, "order")
	s.publish(t, o, stockReserved("tok_visa", 2500))
	s.seen.wait(t, o.id, processedType)
	client := func(conn *grpc.ClientConn) paymentv1.PaymentServiceClient {
		return paymentv1.NewPaymentServiceClient(conn)
	}
	servicetest.Matrix{
		Addr:   s.addr,
		Owner:  o.customer,
		Policy: ports.Policy,
		Cases: []servicetest.MatrixCase{
			{Method: paymentv1.PaymentService_GetPayment_FullMethodName, Foreign: codes.NotFound,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).GetPayment(ctx, &paymentv1.GetPaymentRequest{OrderId: o.id})
					return err
				}},
			{Method: paymentv1.PaymentService_ListPayments_FullMethodName, Foreign: codes.PermissionDenied,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).ListPayments(ctx, &paymentv1.ListPaymentsRequest{CustomerId: o.customer, PageSize: 10})
					return err
				}},
		},
	}.Run(t)
}
