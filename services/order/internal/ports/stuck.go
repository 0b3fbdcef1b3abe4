package ports

import (
	"context"
	"log/slog"
	"time"

	"github.com/sagasuite/sagasuite/services/order/internal/app"
)

// StuckLoop counts the stuck sagas at once and then every interval until ctx
// ends. A failed count is logged once per outage and the last count kept; it
// never stops the service.
func StuckLoop(c *app.StuckCounter, interval time.Duration, logger *slog.Logger) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		failing := false
		for {
			if err := c.Refresh(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if !failing {
					logger.WarnContext(ctx, "stuck sagas count", "error", err)
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
