package ports

import (
	"context"
	"log/slog"
	"time"
)

// RefreshLoop runs refresh at once and then every interval until ctx ends:
// the backlog's count (app.Backlog.Refresh) and the stuck sagas' count
// (app.StuckCounter.Refresh) both keep their last value when a count fails,
// so a failure is logged as what failed, once per outage rather than every
// interval, and never stops the service.
func RefreshLoop(what string, refresh func(ctx context.Context) error, interval time.Duration, logger *slog.Logger) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		failing := false
		for {
			if err := refresh(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if !failing {
					logger.WarnContext(ctx, what, "error", err)
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
