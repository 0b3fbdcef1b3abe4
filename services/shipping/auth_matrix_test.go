package shipping_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/ports"
)

// Every ShippingService method under every kind of caller (issue 14), on a
// shipment the saga booked for one customer.
func TestAuthMatrix(t *testing.T) {
	h := start(t)
	o := newOrder()
	h.deliver(t, o.inventoryUpdated(t, address("DE", "10115"), 1))
	client := func(conn *grpc.ClientConn) shippingv1.ShippingServiceClient {
		return shippingv1.NewShippingServiceClient(conn)
	}
	servicetest.Matrix{
		Addr:   h.addr,
		Owner:  o.customerID,
		Policy: ports.Policy,
		Cases: []servicetest.MatrixCase{
			{Method: shippingv1.ShippingService_GetShipment_FullMethodName, Foreign: codes.NotFound,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).GetShipment(ctx, &shippingv1.GetShipmentRequest{OrderId: o.id})
					return err
				}},
			{Method: shippingv1.ShippingService_ListShipments_FullMethodName, Foreign: codes.PermissionDenied,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).ListShipments(ctx, &shippingv1.ListShipmentsRequest{CustomerId: o.customerID, PageSize: 10})
					return err
				}},
		},
	}.Run(t)
}
