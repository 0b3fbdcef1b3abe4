package ports

import (
	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"

	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
)

// Policy is who may call each NotificationService method: reads only; a
// customer is further confined to their own notifications and orders by
// the handlers.
var Policy = grpcserver.Policy{
	notificationv1.NotificationService_ListNotifications_FullMethodName: {auth.RoleCustomer, auth.RoleOperator, auth.RoleService},
	notificationv1.NotificationService_GetSagaLog_FullMethodName:        {auth.RoleCustomer, auth.RoleOperator, auth.RoleService},
}
