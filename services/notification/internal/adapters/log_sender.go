package adapters

import (
	"context"
	"log/slog"

	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
)

// LogSender "sends" a notification by writing one structured log line: the
// default until a real channel (e-mail gateway) is wired in.
type LogSender struct {
	Logger *slog.Logger
}

var _ app.Sender = LogSender{}

// Send logs n, at DEBUG: two lines per saga at INFO were half the suite's
// log volume at load, and the notifications are kept and listed by the API
// anyway. It never fails.
func (s LogSender) Send(ctx context.Context, n notification.Notification) error {
	s.Logger.DebugContext(ctx, "notification sent",
		slog.String("notification_id", n.ID),
		slog.String("customer_id", n.CustomerID),
		slog.String("order_id", n.OrderID),
		slog.String("event_type", string(n.EventType)),
		slog.String("event_id", n.EventID),
		slog.String("channel", string(n.Channel)),
		slog.String("template", n.Template),
		slog.String("subject", n.Subject),
		slog.String("body", n.Body),
	)
	return nil
}
