package app

import (
	"context"
	"time"
)

// Sweeper finishes intents whose handler died between recording the intent
// and recording the gateway's answer (or gave up on a gateway that did not
// answer). Every replica runs one; a claim moves the intent's lease, so
// each stale intent is taken by one sweeper at a time.
type Sweeper struct{ deps Deps }

// sweepBatch bounds the intents one pass claims.
const sweepBatch = 50

// SweepOnce claims the intents whose lease ran out and settles each: it asks
// the gateway what happened under the intent's key and records that, or
// calls again with the same key. It returns how many intents it claimed and
// the first error (an intent it could not settle waits for its lease again).
func (s Sweeper) SweepOnce(ctx context.Context) (int, error) {
	claimed, err := s.deps.Repo.ClaimExpired(ctx, sweepBatch)
	var first error = err
	for _, p := range claimed {
		if err := s.deps.settle(ctx, p, true); err != nil {
			if first == nil {
				first = err
			}
			s.deps.logger().WarnContext(ctx, "sweeper could not settle a payment intent", "order_id", p.OrderID, "status", string(p.Status), "error", err)
		}
	}
	return len(claimed), first
}

// Run sweeps every interval until ctx ends; a failed pass is retried at the
// next tick (store and gateway outages are normal).
func (s Sweeper) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for {
			n, err := s.SweepOnce(ctx)
			if err != nil || n < sweepBatch || ctx.Err() != nil {
				break // a full batch may mean more are waiting: go on at once
			}
		}
	}
}
