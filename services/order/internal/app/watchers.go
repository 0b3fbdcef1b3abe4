package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// Watchers hands the WatchOrder streams of this process each order's state
// as the committing use case wrote it, so a stream sends a change without
// reading the store. Publish never blocks: each watch keeps only the newest
// snapshot it has not taken yet (a slow stream skips to the latest state),
// so memory is one snapshot per watched order and commits never wait for a
// stream.
//
// Changes other replicas commit are found by one poller per process (Poll,
// RunPolling): one query asks the store for the versions of every watched
// order, and only an order whose stored version is past what its watches
// hold is read, once, and published to all of them. Its cost is one query
// per interval (per pollChunk watched orders) however many streams watch.
type Watchers struct {
	mu      sync.Mutex
	byOrder map[string]map[*Watch]struct{}
	// limits bounds open WatchOrder streams (stream_limits.go).
	limits *StreamLimits
}

// NewWatchers returns a broadcaster with no watches whose streams are
// bounded by limits (nil: the default bounds).
func NewWatchers(limits ...*StreamLimits) *Watchers {
	w := &Watchers{byOrder: map[string]map[*Watch]struct{}{}}
	if len(limits) > 0 && limits[0] != nil {
		w.limits = limits[0]
	} else {
		w.limits, _ = NewStreamLimits(DefaultMaxWatchStreamsPerCustomer, DefaultMaxWatchStreams) // positive constants
	}
	return w
}

// Watch is one stream's subscription to one order.
type Watch struct {
	watchers *Watchers
	orderID  string
	ready    chan struct{} // holds a signal while newest is untaken
	mu       sync.Mutex
	newest   *order.Order
	// version is the newest version this watch was offered or read itself
	// (0 until its stream's first read): the poller compares it with the
	// store's.
	version int64
}

// Watch starts following orderID; Stop ends it.
func (w *Watchers) Watch(orderID string) *Watch {
	watch := &Watch{watchers: w, orderID: orderID, ready: make(chan struct{}, 1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byOrder[orderID] == nil {
		w.byOrder[orderID] = map[*Watch]struct{}{}
	}
	w.byOrder[orderID][watch] = struct{}{}
	return watch
}

// Publish offers o, just committed, to the order's watches. Snapshots are
// shared between watches and read-only, so o is copied once (only when
// someone watches): the committing caller keeps its own.
func (w *Watchers) Publish(o *order.Order) {
	w.mu.Lock()
	defer w.mu.Unlock()
	watches := w.byOrder[o.ID]
	if len(watches) == 0 {
		return
	}
	snapshot := copyOrder(o)
	for watch := range watches {
		watch.offer(snapshot)
	}
}

// Open counts the watches not yet stopped.
func (w *Watchers) Open() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, watches := range w.byOrder {
		n += len(watches)
	}
	return n
}

// VersionStore is what the poller reads: the versions of many orders in
// one query, and the whole order when one moved.
type VersionStore interface {
	VersionsOf(ctx context.Context, ids []string) (map[string]int64, error)
	Get(ctx context.Context, id string) (*order.Order, error)
}

// pollChunk bounds the ids of one version query (its IN list).
const pollChunk = 500

// Poll runs one round of the cross-replica poll: it asks the store for the
// versions of the watched orders (one query per pollChunk orders, none when
// nothing is watched) and publishes each order whose stored version is past
// the oldest version one of its watches holds. It returns how many orders it
// published. A watch whose stream has not read the order yet is left out:
// that first read sees the change itself.
func (w *Watchers) Poll(ctx context.Context, store VersionStore) (int, error) {
	behind := w.oldestVersions()
	if len(behind) == 0 {
		return 0, nil
	}
	ids := make([]string, 0, len(behind))
	for id := range behind {
		ids = append(ids, id)
	}
	published := 0
	for start := 0; start < len(ids); start += pollChunk {
		chunk := ids[start:min(start+pollChunk, len(ids))]
		stored, err := store.VersionsOf(ctx, chunk)
		if err != nil {
			return published, fmt.Errorf("watch poll: %w", err)
		}
		for _, id := range chunk {
			if v, ok := stored[id]; !ok || v <= behind[id] {
				continue
			}
			o, err := store.Get(ctx, id)
			if err != nil {
				return published, fmt.Errorf("watch poll: %w", err)
			}
			w.Publish(o)
			published++
		}
	}
	return published, nil
}

// RunPolling runs Poll every interval until ctx ends. A failed round is
// reported to onError (may be nil) and retried at the next tick: a store
// outage delays other replicas' changes, it never ends a stream.
func (w *Watchers) RunPolling(ctx context.Context, store VersionStore, interval time.Duration, onError func(error)) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if _, err := w.Poll(ctx, store); err != nil && ctx.Err() == nil && onError != nil {
			onError(err)
		}
	}
}

// oldestVersions maps each watched order to the oldest version one of its
// (read) watches holds.
func (w *Watchers) oldestVersions() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	oldest := make(map[string]int64, len(w.byOrder))
	for id, watches := range w.byOrder {
		for watch := range watches {
			v := watch.heldVersion()
			if v == 0 {
				continue
			}
			if known, ok := oldest[id]; !ok || v < known {
				oldest[id] = v
			}
		}
	}
	return oldest
}

// Ready receives a signal when a snapshot is waiting to be taken.
func (s *Watch) Ready() <-chan struct{} { return s.ready }

// Take returns the newest snapshot published since the last Take, or nil.
func (s *Watch) Take() *order.Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.newest
	s.newest = nil
	return o
}

// Read tells the watch which version its stream read from the store, so
// the poller looks for changes after it.
func (s *Watch) Read(version int64) {
	s.mu.Lock()
	s.version = max(s.version, version)
	s.mu.Unlock()
}

// Stop ends the watch; it is safe to call more than once.
func (s *Watch) Stop() {
	w := s.watchers
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.byOrder[s.orderID], s)
	if len(w.byOrder[s.orderID]) == 0 {
		delete(w.byOrder, s.orderID)
	}
}

func (s *Watch) heldVersion() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// offer keeps o unless a newer version waits already: commits of one order
// are serialized by its row lock, but their publishes may cross.
func (s *Watch) offer(o *order.Order) {
	s.mu.Lock()
	if s.newest == nil || o.Version > s.newest.Version {
		s.newest = o
	}
	s.version = max(s.version, o.Version)
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default: // a signal is pending already
	}
}

// copyOrder copies what a watcher could see change: the step history and
// lines are slices the committing caller owns.
func copyOrder(o *order.Order) *order.Order {
	c := *o
	c.Lines = append([]order.Line(nil), o.Lines...)
	c.Steps = append([]order.Step(nil), o.Steps...)
	return &c
}
