package ports

import (
	"context"
	"errors"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	"github.com/sagasuite/sagasuite/services/payment/internal/app"
	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// GRPCServer implements paymentv1.PaymentServiceServer. Requests have passed
// their protovalidate rules (the server's interceptor) before they get here.
type GRPCServer struct {
	paymentv1.UnimplementedPaymentServiceServer
	app app.Application
}

// NewGRPCServer returns the API over the use cases.
func NewGRPCServer(a app.Application) *GRPCServer { return &GRPCServer{app: a} }

// GetPayment returns the order's payment with its refunds; another
// customer's is NotFound, as a missing one.
func (s *GRPCServer) GetPayment(ctx context.Context, req *paymentv1.GetPaymentRequest) (*paymentv1.GetPaymentResponse, error) {
	if req.GetOrderId() == "" {
		return nil, toStatus(payment.Invalid("order_id", "is required"))
	}
	p, err := s.app.GetPayment.Handle(ctx, req.GetOrderId())
	if err == nil && !auth.Visible(ctx, p.CustomerID) {
		err = payment.ErrNotFound
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &paymentv1.GetPaymentResponse{Payment: paymentToProto(p)}, nil
}

// ListPayments pages through the customer's payments, newest first; a
// customer lists their own only.
func (s *GRPCServer) ListPayments(ctx context.Context, req *paymentv1.ListPaymentsRequest) (*paymentv1.ListPaymentsResponse, error) {
	customerID, err := auth.CustomerFilter(ctx, req.GetCustomerId())
	if err != nil {
		return nil, err
	}
	if customerID == "" {
		return nil, toStatus(payment.Invalid("customer_id", "is required"))
	}
	payments, next, err := s.app.ListPayments.Handle(ctx, customerID, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &paymentv1.ListPaymentsResponse{NextPageToken: next, Payments: make([]*paymentv1.Payment, len(payments))}
	for i, p := range payments {
		resp.Payments[i] = paymentToProto(p)
	}
	return resp, nil
}

// toStatus maps errors to gRPC codes, in one place: not found → NotFound,
// invalid input → InvalidArgument naming the field (also as a BadRequest
// detail), a cancelled call → Canceled/DeadlineExceeded, the rest → Internal
// without internals.
func toStatus(err error) error {
	var invalid *payment.InvalidError
	switch {
	case errors.Is(err, payment.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.As(err, &invalid):
		return grpcserver.InvalidArgument(invalid.Field, invalid.Reason)
	case errors.Is(err, payment.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return status.Error(codes.Internal, "internal error")
}

func paymentToProto(p *payment.Payment) *paymentv1.Payment {
	out := &paymentv1.Payment{
		PaymentId: p.PaymentID, OrderId: p.OrderID, CustomerId: p.CustomerID, Amount: moneyToProto(p.Amount),
		Status: statusToProto(p.Status), DeclineCode: p.DeclineCode,
		CreateTime: timestamppb.New(p.CreatedAt), UpdateTime: timestamppb.New(p.UpdatedAt),
	}
	if p.Status == payment.StatusFailed {
		out.FailureReason = failureReasonToProto(p.FailureReason)
	}
	if rf := p.Refund; rf != nil {
		out.Refunds = []*paymentv1.Refund{{
			RefundId: rf.RefundID, Amount: moneyToProto(rf.Amount), Reason: refundReasonToProto(rf.Reason),
			CreateTime: timestamppb.New(rf.CreatedAt),
		}}
	}
	return out
}

func statusToProto(s payment.Status) paymentv1.PaymentStatus {
	switch s {
	case payment.StatusCaptured, payment.StatusRefundPending:
		// A refund asked of the gateway but not confirmed: the money is
		// still captured (the API has no pending status).
		return paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED
	case payment.StatusFailed:
		return paymentv1.PaymentStatus_PAYMENT_STATUS_FAILED
	case payment.StatusRefunded:
		return paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED
	}
	return paymentv1.PaymentStatus_PAYMENT_STATUS_UNSPECIFIED
}
