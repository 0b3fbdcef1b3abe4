package ports

import (
	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"

	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
)

// Policy is who may call each PaymentService method: reads only; a
// customer is further confined to their own payments by the handlers.
var Policy = grpcserver.Policy{
	paymentv1.PaymentService_GetPayment_FullMethodName:   {auth.RoleCustomer, auth.RoleOperator, auth.RoleService},
	paymentv1.PaymentService_ListPayments_FullMethodName: {auth.RoleCustomer, auth.RoleOperator, auth.RoleService},
}
