package ports

import (
	"context"
	"errors"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// GRPCServer implements shippingv1.ShippingServiceServer. Request fields are
// checked by their protovalidate rules in the server's interceptor before a
// method runs (order_id and customer_id must be UUIDs, page_size 0–100).
type GRPCServer struct {
	shippingv1.UnimplementedShippingServiceServer
	app app.Application
}

// NewGRPCServer serves a's queries.
func NewGRPCServer(a app.Application) *GRPCServer { return &GRPCServer{app: a} }

// GetShipment returns one order's shipment; another customer's is NotFound,
// as a missing one.
func (s *GRPCServer) GetShipment(ctx context.Context, req *shippingv1.GetShipmentRequest) (*shippingv1.GetShipmentResponse, error) {
	sh, err := s.app.GetShipment.Handle(ctx, req.GetOrderId())
	if err == nil && !auth.Visible(ctx, sh.CustomerID) {
		err = shipment.NotFound(req.GetOrderId())
	}
	if err != nil {
		return nil, grpcError(err)
	}
	return &shippingv1.GetShipmentResponse{Shipment: shipmentToProto(sh)}, nil
}

// ListShipments pages through a customer's shipments, newest first; a
// customer lists their own only.
func (s *GRPCServer) ListShipments(ctx context.Context, req *shippingv1.ListShipmentsRequest) (*shippingv1.ListShipmentsResponse, error) {
	customerID, err := auth.CustomerFilter(ctx, req.GetCustomerId())
	if err != nil {
		return nil, err
	}
	page, next, err := s.app.ListShipments.Handle(ctx, app.ListShipments{
		CustomerID: customerID, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &shippingv1.ListShipmentsResponse{NextPageToken: next, Shipments: make([]*shippingv1.Shipment, len(page))}
	for i, sh := range page {
		resp.Shipments[i] = shipmentToProto(sh)
	}
	return resp, nil
}

// grpcError maps use-case and domain errors to gRPC codes, in one place.
func grpcError(err error) error {
	switch {
	case errors.Is(err, shipment.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, app.ErrBadPageToken):
		return grpcserver.InvalidArgument("page_token", "is not a token this service issued")
	case errors.Is(err, shipment.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, err.Error())
}

func shipmentToProto(s *shipment.Shipment) *shippingv1.Shipment {
	out := &shippingv1.Shipment{
		ShipmentId:     s.ShipmentID,
		OrderId:        s.OrderID,
		CustomerId:     s.CustomerID,
		Status:         statusToProto(s.Status),
		Carrier:        s.Carrier,
		TrackingNumber: s.TrackingNumber,
		FailureReason:  failureReasonToProto(s.FailureReason),
		CreateTime:     timestamppb.New(s.CreatedAt),
		UpdateTime:     timestamppb.New(s.UpdatedAt),
	}
	if s.Address != (shipment.Address{}) { // a tombstone has none
		a := s.Address
		out.Address = &commonv1.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, CountryCode: a.CountryCode}
	}
	for _, p := range s.Parcels {
		parcel := &shippingv1.Parcel{ParcelId: p.ParcelID, WeightGrams: p.WeightGrams}
		for _, l := range p.Lines {
			parcel.Lines = append(parcel.Lines, &commonv1.LineItem{Sku: l.SKU, Quantity: int32(l.Quantity), UnitPriceMinor: l.UnitPriceMinor})
		}
		out.Parcels = append(out.Parcels, parcel)
	}
	for _, t := range s.Tracking {
		out.Tracking = append(out.Tracking, &shippingv1.TrackingEvent{
			Status: statusToProto(t.Status), Description: t.Description, Location: t.Location, OccurTime: timestamppb.New(t.At),
		})
	}
	return out
}

func statusToProto(s shipment.Status) shippingv1.ShipmentStatus {
	switch s {
	case shipment.StatusCreated:
		return shippingv1.ShipmentStatus_SHIPMENT_STATUS_CREATED
	case shipment.StatusFailed:
		return shippingv1.ShipmentStatus_SHIPMENT_STATUS_FAILED
	case shipment.StatusCancelled:
		return shippingv1.ShipmentStatus_SHIPMENT_STATUS_CANCELLED
	}
	return shippingv1.ShipmentStatus_SHIPMENT_STATUS_UNSPECIFIED
}
