package notification_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	"github.com/sagasuite/sagasuite/services/notification/internal/ports"
	"github.com/sagasuite/sagasuite/services/notification/internal/sagatest"
)

// Every NotificationService method under every kind of caller (issue 14),
// on one customer's saga.
func TestAuthMatrix(t *testing.T) {
	svc := start(t)
	orderID, customerID := testenv.IDFor(t.Name()+"/order"), testenv.IDFor(t.Name()+"/customer")
	publish(t, svc.prefix, sagatest.Envelopes(t, orderID, customerID, time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), sagatest.AllTypes(t))...)
	waitConsumed(t, svc.prefix)
	client := func(conn *grpc.ClientConn) notificationv1.NotificationServiceClient {
		return notificationv1.NewNotificationServiceClient(conn)
	}
	servicetest.Matrix{
		Addr:   svc.addr,
		Owner:  customerID,
		Policy: ports.Policy,
		Cases: []servicetest.MatrixCase{
			{Method: notificationv1.NotificationService_ListNotifications_FullMethodName, Foreign: codes.PermissionDenied,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).ListNotifications(ctx, &notificationv1.ListNotificationsRequest{CustomerId: customerID, PageSize: 10})
					return err
				}},
			{Method: notificationv1.NotificationService_GetSagaLog_FullMethodName, Foreign: codes.NotFound,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).GetSagaLog(ctx, &notificationv1.GetSagaLogRequest{OrderId: orderID})
					return err
				}},
		},
	}.Run(t)
}
