package ports

import (
	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"

	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

// Policy is who may call each OrderService method. A customer is further
// confined to their own orders by the handlers (auth.CustomerScope); an
// operator reads everything and cancels any order but places none; a
// service identity (sagactl audit, bench, demo) may do everything.
// ListStuckSagas crosses customers: operators and services only.
var Policy = grpcserver.Policy{
	orderv1.OrderService_CreateOrder_FullMethodName:    {auth.RoleCustomer, auth.RoleService},
	orderv1.OrderService_GetOrder_FullMethodName:       {auth.RoleCustomer, auth.RoleOperator, auth.RoleService},
	orderv1.OrderService_ListOrders_FullMethodName:     {auth.RoleCustomer, auth.RoleOperator, auth.RoleService},
	orderv1.OrderService_WatchOrder_FullMethodName:     {auth.RoleCustomer, auth.RoleOperator, auth.RoleService},
	orderv1.OrderService_CancelOrder_FullMethodName:    {auth.RoleCustomer, auth.RoleOperator, auth.RoleService},
	orderv1.OrderService_ListStuckSagas_FullMethodName: {auth.RoleOperator, auth.RoleService},
}
