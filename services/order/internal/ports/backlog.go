package ports

import (
	"context"
	"log/slog"
	"time"

	"github.com/sagasuite/sagasuite/services/order/internal/app"
)

// BacklogLoop refreshes the backlog's count from the store at once and then
// every interval until ctx ends. A failed count is logged and the last
// estimate kept (it only errs high between refreshes); it never stops the
// service.
func BacklogLoop(b *app.Backlog, interval time.Duration, logger *slog.Logger) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		failing := false
		for {
			if err := b.Refresh(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if !failing { // once per outage, not every interval
					logger.WarnContext(ctx, "pending orders count", "error", err)
				}
				failing = true
			} else {
				failing = false
			}
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
	}
}
