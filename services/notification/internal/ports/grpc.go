package ports

import (
	"context"
	"errors"
	"log/slog"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
)

// GRPCServer implements notificationv1.NotificationServiceServer. Request
// shapes (uuids, page size bounds) are checked by the server's protovalidate
// interceptor before a call gets here.
type GRPCServer struct {
	notificationv1.UnimplementedNotificationServiceServer
	app    app.Application
	logger *slog.Logger
}

// NewGRPCServer returns the API over the use cases.
func NewGRPCServer(a app.Application, logger *slog.Logger) *GRPCServer {
	return &GRPCServer{app: a, logger: logger}
}

// ListNotifications pages through a customer's notifications, newest
// first; a customer lists their own only.
func (s *GRPCServer) ListNotifications(ctx context.Context, req *notificationv1.ListNotificationsRequest) (*notificationv1.ListNotificationsResponse, error) {
	customerID, err := auth.CustomerFilter(ctx, req.GetCustomerId())
	if err != nil {
		return nil, err
	}
	page, err := s.app.Queries.ListNotifications.Handle(ctx, app.ListNotifications{
		CustomerID: customerID, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &notificationv1.ListNotificationsResponse{NextPageToken: page.NextPageToken}
	for _, n := range page.Notifications {
		resp.Notifications = append(resp.Notifications, toProto(n))
	}
	return resp, nil
}

// GetSagaLog returns an order's recorded envelopes, oldest first, with
// payment method tokens masked; another customer's order is NotFound, as
// one without events.
func (s *GRPCServer) GetSagaLog(ctx context.Context, req *notificationv1.GetSagaLogRequest) (*notificationv1.GetSagaLogResponse, error) {
	log, err := s.app.Queries.GetSagaLog.Handle(ctx, req.GetOrderId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	// Every entry must be the caller's, and before anything else is looked
	// at: a foreign log must not answer differently (e.g. DataLoss).
	for _, entry := range log {
		if !auth.Visible(ctx, entry.CustomerID) {
			return nil, s.toStatus(ctx, app.SagaLogNotFound(req.GetOrderId()))
		}
	}
	resp := &notificationv1.GetSagaLogResponse{OrderId: req.GetOrderId()}
	for _, entry := range log {
		env := &eventsv1.Envelope{}
		if err := proto.Unmarshal(entry.Envelope, env); err != nil {
			s.logger.ErrorContext(ctx, "stored envelope does not decode", "order_id", entry.OrderID, "event_id", entry.EventID, "error", err)
			return nil, status.Errorf(codes.DataLoss, "stored event %s of order %s does not decode", entry.EventID, entry.OrderID)
		}
		maskPaymentTokens(env.ProtoReflect())
		resp.Events = append(resp.Events, env)
	}
	return resp, nil
}

// PaymentTokenMask replaces a payment method token in an API answer: the
// field stays set (and valid: 1–256 characters) so a reader sees one was
// given, but the token never leaves the payment path.
const PaymentTokenMask = "[redacted]"

// paymentTokenField is the name every event gives a payment method token.
const paymentTokenField = "payment_method_token"

// maskPaymentTokens masks every set payment_method_token in m, at any
// depth: by field name, so a payload type added later is covered too.
func maskPaymentTokens(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Name() == paymentTokenField && fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap():
			m.Set(fd, protoreflect.ValueOfString(PaymentTokenMask))
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			switch {
			case fd.IsList():
				for i, list := 0, v.List(); i < list.Len(); i++ {
					maskPaymentTokens(list.Get(i).Message())
				}
			case fd.IsMap():
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					if fd.MapValue().Kind() == protoreflect.MessageKind {
						maskPaymentTokens(mv.Message())
					}
					return true
				})
			default:
				maskPaymentTokens(v.Message())
			}
		}
		return true
	})
}

func toProto(n notification.Notification) *notificationv1.Notification {
	eventType, _ := events.ParseType(string(n.EventType)) // UNSPECIFIED when unknown
	return &notificationv1.Notification{
		NotificationId: n.ID,
		CustomerId:     n.CustomerID,
		OrderId:        n.OrderID,
		Channel:        eventsv1.NotificationChannel(eventsv1.NotificationChannel_value["NOTIFICATION_CHANNEL_"+string(n.Channel)]),
		Template:       n.Template,
		Subject:        n.Subject,
		Body:           n.Body,
		EventType:      eventType,
		EventId:        n.EventID,
		SendTime:       timestamppb.New(n.SendTime),
	}
}

// toStatus is the one place where use-case errors become gRPC codes.
func (s *GRPCServer) toStatus(ctx context.Context, err error) error {
	var field *app.FieldError
	switch {
	case errors.As(err, &field):
		return grpcserver.InvalidArgument(field.Field, field.Problem)
	case errors.Is(err, app.ErrInvalidPageToken):
		return grpcserver.InvalidArgument("page_token", "is not a token this service issued for this customer")
	case errors.Is(err, app.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	// Store failures: the details stay in our log, not in the client's hands.
	s.logger.ErrorContext(ctx, "notification query failed", "error", err)
	return status.Error(codes.Unavailable, "notification store unavailable; retry later")
}
