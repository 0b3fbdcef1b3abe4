package ports

import (
	"context"
	"log/slog"
	"time"

	"github.com/sagasuite/sagasuite/services/order/internal/app"
)

// DeadlineLoop runs the deadline scan every interval until ctx ends: PENDING
// orders past their deadline are cancelled (TIMEOUT). A failed scan is logged
// and retried at the next tick; it never stops the service.
func DeadlineLoop(h app.ExpireOrdersHandler, interval time.Duration, logger *slog.Logger) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
			n, err := h.Handle(ctx)
			if err != nil && ctx.Err() == nil {
				logger.WarnContext(ctx, "deadline scan", "error", err, "cancelled", n)
			} else if n > 0 {
				logger.InfoContext(ctx, "orders timed out", "cancelled", n)
			}
		}
	}
}
