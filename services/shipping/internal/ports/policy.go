package ports

import (
	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"

	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
)

// Policy is who may call each ShippingService method: reads only; a
// customer is further confined to their own shipments by the handlers.
var Policy = grpcserver.Policy{
	shippingv1.ShippingService_GetShipment_FullMethodName:   {auth.RoleCustomer, auth.RoleOperator, auth.RoleService},
	shippingv1.ShippingService_ListShipments_FullMethodName: {auth.RoleCustomer, auth.RoleOperator, auth.RoleService},
}
