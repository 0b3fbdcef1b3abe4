package app_test

import (
	"testing"

	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

func snapshot(id string, version int64, status order.Status) *order.Order {
	return &order.Order{ID: id, Version: version, Status: status,
		Steps: []order.Step{{EventType: order.EventOrderCreated, EventID: "e1"}}}
}

func ready(w *app.Watch) bool {
	select {
	case <-w.Ready():
		return true
	default:
		return false
	}
}

// Each watch of an order gets the order's newest snapshot; other orders'
// watches get nothing; many publishes merge into one signal and one
// snapshot, the newest version even when the publishes arrive crossed.
func TestWatchersKeepTheNewestSnapshotPerWatch(t *testing.T) {
	w := app.NewWatchers()
	a1, a2, b := w.Watch("a"), w.Watch("a"), w.Watch("b")
	defer b.Stop()

	w.Publish(snapshot("a", 2, order.StatusPending))
	w.Publish(snapshot("a", 4, order.StatusCompleted))
	w.Publish(snapshot("a", 3, order.StatusPending)) // committed before v4, published after
	for i, watch := range []*app.Watch{a1, a2} {
		if !ready(watch) {
			t.Fatalf("watch %d of a was not signalled", i)
		}
		if ready(watch) {
			t.Errorf("watch %d of a got two signals for merged publishes", i)
		}
		if got := watch.Take(); got == nil || got.Version != 4 || got.Status != order.StatusCompleted {
			t.Errorf("watch %d of a took %+v, want version 4 COMPLETED", i, got)
		}
		if got := watch.Take(); got != nil {
			t.Errorf("watch %d of a took %+v a second time", i, got)
		}
	}
	if ready(b) || b.Take() != nil {
		t.Error("watch of b got a change of a")
	}

	a1.Stop()
	a1.Stop() // twice is harmless
	w.Publish(snapshot("a", 5, order.StatusCompleted))
	if ready(a1) || a1.Take() != nil {
		t.Error("a stopped watch got a snapshot")
	}
	if got := a2.Take(); got == nil || got.Version != 5 {
		t.Errorf("the remaining watch of a took %+v, want version 5", got)
	}
	if n := w.Open(); n != 2 {
		t.Errorf("%d watches open, want 2", n)
	}
	a2.Stop()
	b.Stop()
	if n := w.Open(); n != 0 {
		t.Errorf("%d watches open after all stopped, want 0", n)
	}
}

// The committing caller keeps its order: a watcher's snapshot does not move
// when the caller's copy does.
func TestWatchersPublishACopy(t *testing.T) {
	w := app.NewWatchers()
	watch := w.Watch("a")
	defer watch.Stop()
	committed := snapshot("a", 2, order.StatusPending)
	w.Publish(committed)
	committed.Status = order.StatusCancelled
	committed.Steps[0].Detail = "changed by the caller"
	committed.Steps = append(committed.Steps, order.Step{EventType: order.EventOrderCancelled})
	got := watch.Take()
	if got.Status != order.StatusPending || len(got.Steps) != 1 || got.Steps[0].Detail != "" {
		t.Errorf("snapshot changed with the caller's order: %+v", got)
	}
}
