package ports

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// GRPCServer is the OrderService API over the use cases. Requests have passed
// their protovalidate rules (grpcserver's interceptor) before they get here;
// the domain checks again what it relies on.
type GRPCServer struct {
	orderv1.UnimplementedOrderServiceServer
	app    app.Application
	logger *slog.Logger
	// refused is told of each CreateOrder refused for overload (a metric).
	refused func(ctx context.Context)
}

// NewGRPCServer returns the API; logger receives internal errors, which
// clients only see as codes.Internal; refused (may be nil) is told of each
// order refused for overload.
func NewGRPCServer(a app.Application, logger *slog.Logger, refused func(ctx context.Context)) *GRPCServer {
	return &GRPCServer{app: a, logger: logger, refused: refused}
}

// CreateOrder places an order (PENDING + ORDER_CREATED); a retry with the
// same request_id returns the first order. A customer orders for themselves
// only.
func (s *GRPCServer) CreateOrder(ctx context.Context, req *orderv1.CreateOrderRequest) (*orderv1.CreateOrderResponse, error) {
	customerID, err := auth.CustomerFilter(ctx, req.GetCustomerId())
	if err != nil {
		return nil, err
	}
	lines := make([]order.Line, len(req.GetLines()))
	for i, l := range req.GetLines() {
		lines[i] = order.Line{SKU: l.GetSku(), Quantity: l.GetQuantity(), UnitPriceMinor: l.GetUnitPriceMinor()}
	}
	a := req.GetShippingAddress()
	o, err := s.app.CreateOrder.Handle(ctx, order.Draft{
		CustomerID: customerID,
		RequestID:  req.GetRequestId(),
		Lines:      lines,
		Currency:   req.GetCurrency(),
		ShippingAddress: order.Address{Name: a.GetName(), Line1: a.GetLine1(), Line2: a.GetLine2(), City: a.GetCity(),
			PostalCode: a.GetPostalCode(), CountryCode: a.GetCountryCode()},
		PaymentToken: req.GetPaymentMethodToken(),
	})
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &orderv1.CreateOrderResponse{Order: toProto(o)}, nil
}

// GetOrder returns one order with its step history; another customer's
// order is NotFound, as a missing one.
func (s *GRPCServer) GetOrder(ctx context.Context, req *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
	o, err := s.app.GetOrder.Handle(ctx, req.GetOrderId())
	if err == nil && !auth.Visible(ctx, o.CustomerID) {
		err = order.NotFound(req.GetOrderId())
	}
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &orderv1.GetOrderResponse{Order: toProto(o)}, nil
}

// ListOrders returns a page of orders, newest first: a customer lists their
// own only (an empty customer_id means them); an operator or a service lists
// one customer's or, with customer_id empty, everyone's.
func (s *GRPCServer) ListOrders(ctx context.Context, req *orderv1.ListOrdersRequest) (*orderv1.ListOrdersResponse, error) {
	customerID, err := auth.CustomerFilter(ctx, req.GetCustomerId())
	if err != nil {
		return nil, err
	}
	filter, err := listFilter(customerID, req)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	orders, next, err := s.app.ListOrders.Handle(ctx, filter, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	resp := &orderv1.ListOrdersResponse{Orders: make([]*orderv1.Order, len(orders)), NextPageToken: next}
	for i, o := range orders {
		resp.Orders[i] = toProto(o)
	}
	return resp, nil
}

// listFilter turns the request's filters into the use case's; an
// unrepresentable timestamp is invalid, named by its field.
func listFilter(customerID string, req *orderv1.ListOrdersRequest) (app.ListFilter, error) {
	f := app.ListFilter{CustomerID: customerID}
	if st := req.GetStatus(); st != orderv1.OrderStatus_ORDER_STATUS_UNSPECIFIED {
		f.Status = order.Status(strings.TrimPrefix(st.String(), "ORDER_STATUS_"))
	}
	if r := req.GetCancelReason(); r != eventsv1.CancelReason_CANCEL_REASON_UNSPECIFIED {
		f.CancelReason = order.CancelReason(strings.TrimPrefix(r.String(), cancelReasonPrefix))
	}
	for _, bound := range []struct {
		field string
		ts    *timestamppb.Timestamp
		into  *time.Time
	}{{"created_after", req.GetCreatedAfter(), &f.CreatedFrom}, {"created_before", req.GetCreatedBefore(), &f.CreatedBefore}} {
		if bound.ts == nil {
			continue
		}
		if err := bound.ts.CheckValid(); err != nil {
			return app.ListFilter{}, order.Invalid(bound.field, "%v", err)
		}
		*bound.into = bound.ts.AsTime()
	}
	return f, nil
}

// CancelOrder cancels a PENDING order (CUSTOMER_REQUESTED). A customer
// cancels their own orders only; another's is NotFound, as a missing one.
func (s *GRPCServer) CancelOrder(ctx context.Context, req *orderv1.CancelOrderRequest) (*orderv1.CancelOrderResponse, error) {
	onlyCustomer, scoped := auth.CustomerScope(ctx)
	if scoped && onlyCustomer == "" { // a customer without a subject owns nothing
		return nil, s.status(ctx, order.NotFound(req.GetOrderId()))
	}
	o, err := s.app.CancelOrder.Handle(ctx, req.GetOrderId(), req.GetReason(), onlyCustomer, req.GetRequestId())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &orderv1.CancelOrderResponse{Order: toProto(o)}, nil
}

// WatchOrder streams the order now and after every change, until it ends;
// another customer's order is NotFound, as a missing one, before anything
// is sent.
func (s *GRPCServer) WatchOrder(req *orderv1.WatchOrderRequest, stream orderv1.OrderService_WatchOrderServer) error {
	ctx := stream.Context()
	err := s.app.WatchOrder.Handle(ctx, req.GetOrderId(), func(o *order.Order) error {
		if !auth.Visible(ctx, o.CustomerID) { // an order's customer never changes: the first snapshot decides
			return order.NotFound(req.GetOrderId())
		}
		return stream.Send(&orderv1.WatchOrderResponse{Order: toProto(o)})
	})
	if err != nil {
		return s.status(stream.Context(), err)
	}
	return nil
}

// ListStuckSagas lists PENDING orders without progress for older_than
// (default 60 s) with the step each waits on. The policy admits operators
// and services only: it crosses customers.
func (s *GRPCServer) ListStuckSagas(ctx context.Context, req *orderv1.ListStuckSagasRequest) (*orderv1.ListStuckSagasResponse, error) {
	var olderThan time.Duration
	if req.GetOlderThan() != nil {
		olderThan = req.GetOlderThan().AsDuration()
	}
	stuck, truncated, err := s.app.ListStuckSagas.Handle(ctx, olderThan, int(req.GetPageSize()))
	if err != nil {
		return nil, s.status(ctx, err)
	}
	resp := &orderv1.ListStuckSagasResponse{Sagas: make([]*orderv1.StuckSaga, len(stuck)), Truncated: truncated}
	for i, st := range stuck {
		resp.Sagas[i] = &orderv1.StuckSaga{
			OrderId:          st.Order.ID,
			CustomerId:       st.Order.CustomerID,
			LastStep:         eventType(st.LastStep),
			WaitingFor:       eventType(st.WaitingFor),
			WaitingOn:        st.WaitingOn,
			LastProgressTime: timestamppb.New(st.Order.UpdatedAt),
			StalledFor:       durationpb.New(st.StalledFor),
			Deadline:         timestamppb.New(st.Order.Deadline),
		}
	}
	return resp, nil
}

// eventType maps a domain event type to the wire enum (same names; "" is
// UNSPECIFIED).
func eventType(t order.EventType) eventsv1.EventType {
	return eventsv1.EventType(eventsv1.EventType_value["EVENT_TYPE_"+string(t)])
}

// status maps use-case errors to gRPC codes — the one place that does.
func (s *GRPCServer) status(ctx context.Context, err error) error {
	var (
		invalid    *order.InvalidError
		overloaded *app.OverloadedError
	)
	switch {
	case errors.As(err, &overloaded):
		if s.refused != nil {
			s.refused(ctx)
		}
		return overloadStatus(overloaded)
	case errors.As(err, &invalid):
		return grpcserver.InvalidArgument(invalid.Field, invalid.Reason)
	case errors.As(err, new(*app.TooManyStreamsError)):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, order.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, order.ErrNotPending):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, order.ErrRequestIDReused):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (a failed stream send)
	}
	s.logger.ErrorContext(ctx, "order API", "error", err)
	return status.Error(codes.Internal, "internal error")
}

// overloadStatus is ResourceExhausted with a google.rpc.RetryInfo detail, the
// standard retry hint clients and gateways understand. The backlog's figures
// stay in the server's metrics, not in what customers see.
func overloadStatus(e *app.OverloadedError) error {
	st := status.New(codes.ResourceExhausted, "the order service is at capacity; retry later")
	if withHint, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)}); err == nil {
		st = withHint
	}
	return st.Err()
}

func toProto(o *order.Order) *orderv1.Order {
	p := &orderv1.Order{
		OrderId:         o.ID,
		CustomerId:      o.CustomerID,
		Status:          orderv1.OrderStatus(orderv1.OrderStatus_value["ORDER_STATUS_"+string(o.Status)]),
		Lines:           lineItems(o.Lines),
		Total:           &commonv1.Money{AmountMinor: o.TotalMinor, Currency: o.Currency},
		ShippingAddress: address(o.ShippingAddress),
		CancelDetail:    o.CancelDetail,
		Steps:           make([]*orderv1.Step, len(o.Steps)),
		Deadline:        timestamppb.New(o.Deadline),
		CreateTime:      timestamppb.New(o.CreatedAt),
		UpdateTime:      timestamppb.New(o.UpdatedAt),
	}
	if o.CancelReason != "" {
		p.CancelReason = cancelReason(o.CancelReason)
	}
	for i, st := range o.Steps {
		p.Steps[i] = &orderv1.Step{
			EventType:  eventsv1.EventType(eventsv1.EventType_value["EVENT_TYPE_"+string(st.EventType)]),
			EventId:    st.EventID,
			OccurredAt: timestamppb.New(st.OccurredAt),
			Detail:     st.Detail,
		}
	}
	return p
}
