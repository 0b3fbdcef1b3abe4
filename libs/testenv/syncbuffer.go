package testenv

import (
	"bytes"
	"sync"
)

// SyncBuffer collects output written from many goroutines (services' logs,
// a child process's stderr) for a test to read while they still write. The
// zero value is ready to use.
type SyncBuffer struct {
	// Limit, if positive, bounds what is kept: writes past it are dropped
	// (reported as written), keeping the start, where trouble shows first.
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p, or drops it once Limit bytes are kept.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Limit > 0 && b.buf.Len() >= b.Limit {
		return len(p), nil
	}
	return b.buf.Write(p)
}

// String is everything kept so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
