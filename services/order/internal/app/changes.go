package app

import "sync"

// Changes tells an order's watchers in this process that it changed: the
// use cases publish after each commit. Other replicas' changes are not seen
// here; watchers also re-read periodically for those.
type Changes struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// NewChanges returns an empty broadcaster.
func NewChanges() *Changes { return &Changes{subs: map[string]map[chan struct{}]struct{}{}} }

// Subscribe returns a channel that receives a signal after changes of the
// order (several changes may merge into one signal: re-read the order), and
// a function that ends the subscription.
func (c *Changes) Subscribe(orderID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs[orderID] == nil {
		c.subs[orderID] = map[chan struct{}]struct{}{}
	}
	c.subs[orderID][ch] = struct{}{}
	return ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.subs[orderID], ch)
		if len(c.subs[orderID]) == 0 {
			delete(c.subs, orderID)
		}
	}
}

// Publish signals every watcher of the order; it never blocks.
func (c *Changes) Publish(orderID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.subs[orderID] {
		select {
		case ch <- struct{}{}:
		default: // a signal is pending already
		}
	}
}
