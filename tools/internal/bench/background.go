package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// Background is a Run in its own goroutine, for tests that disrupt the
// suite while the load goes on: it records every order's end, places orders
// until Stop, then awaits the placed ones.
type Background struct {
	ends Ends
	stop chan struct{}
	once sync.Once
	done chan struct{}
	res  Result
	err  error
}

// Start begins Run(ctx, c, cfg) in the background; cfg.Stop and cfg.Observe
// are the Background's own.
func Start(ctx context.Context, c suite.Clients, cfg Config) *Background {
	b := &Background{stop: make(chan struct{}), done: make(chan struct{})}
	cfg.Stop, cfg.Observe = b.stop, b.ends.Add
	go func() {
		defer close(b.done)
		b.res, b.err = Run(ctx, c, cfg)
	}()
	return b
}

// Stop ends placing orders; safe to call more than once.
func (b *Background) Stop() { b.once.Do(func() { close(b.stop) }) }

// Done is closed when the run has returned.
func (b *Background) Done() <-chan struct{} { return b.done }

// Wait stops placing, waits until every placed order ended or its wait gave
// up (or the run's context ended), and returns what Run returned.
func (b *Background) Wait() (Result, error) {
	b.Stop()
	<-b.done
	return b.res, b.err
}

// Ends are the orders that ended so far.
func (b *Background) Ends() []OrderEnd { return b.ends.Snapshot() }

// AwaitCompleted waits, at most bound, until an order has COMPLETED: the
// suite works end to end.
func (b *Background) AwaitCompleted(ctx context.Context, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		if slices.ContainsFunc(b.Ends(), func(e OrderEnd) bool { return e.Outcome == completed }) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no order COMPLETED within %s of the load starting: %w", bound, ctx.Err())
		case <-b.done:
			return fmt.Errorf("the load ended before an order COMPLETED (%v)", b.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
