package app

import (
	"sync"

	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// Watchers hands the WatchOrder streams of this process each order's state
// as the committing use case wrote it, so a stream sends a change without
// reading the store. Publish never blocks: each watch keeps only the newest
// snapshot it has not taken yet (a slow stream skips to the latest state),
// so memory is one snapshot per watched order and commits never wait for a
// stream. Changes other replicas commit are not published here; the stream
// finds those with its fallback poll.
type Watchers struct {
	mu      sync.Mutex
	byOrder map[string]map[*Watch]struct{}
}

// NewWatchers returns a broadcaster with no watches.
func NewWatchers() *Watchers { return &Watchers{byOrder: map[string]map[*Watch]struct{}{}} }

// Watch is one stream's subscription to one order.
type Watch struct {
	watchers *Watchers
	orderID  string
	ready    chan struct{} // holds a signal while newest is untaken
	mu       sync.Mutex
	newest   *order.Order
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

// offer keeps o unless a newer version waits already: commits of one order
// are serialized by its row lock, but their publishes may cross.
func (s *Watch) offer(o *order.Order) {
	s.mu.Lock()
	if s.newest == nil || o.Version > s.newest.Version {
		s.newest = o
	}
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
