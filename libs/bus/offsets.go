package bus

import (
	"sync"
)

// partitionTrack turns out-of-order completions (workers run different keys
// in parallel, a retrying key waits while later keys finish) into safe
// commits: only the longest finished prefix of what was fetched is
// committable, so a crash never skips an unfinished event. It keeps offsets
// only, not records, so finished records behind a waiting one cost 16 bytes.
type partitionTrack struct {
	mu      sync.Mutex
	pending []trackedOffset // fetch order, starting at the first unfinished
	// commit is the offset to commit next (last finished prefix + 1), or -1
	// when nothing new is committable.
	commit int64
	// For the lag gauge: the partition's end as of the last fetch, and the
	// next offset not yet finished (everything before it is done).
	highWaterMark, nextUnfinished int64
}

type trackedOffset struct {
	offset int64
	done   bool
}

func newPartitionTrack(start int64) *partitionTrack {
	return &partitionTrack{commit: -1, nextUnfinished: start}
}

func (p *partitionTrack) fetched(offset, highWaterMark int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) == 0 {
		// Everything before it is finished (offsets may skip: compaction,
		// transaction markers).
		p.nextUnfinished = offset
	}
	p.highWaterMark = highWaterMark
	p.pending = append(p.pending, trackedOffset{offset: offset})
}

func (p *partitionTrack) done(offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Completions come mostly in fetch order: search from the front.
	for i := range p.pending {
		if p.pending[i].offset == offset {
			p.pending[i].done = true
			break
		}
	}
	n := 0
	for n < len(p.pending) && p.pending[n].done {
		n++
	}
	if n > 0 {
		next := p.pending[n-1].offset + 1
		p.commit = next
		p.nextUnfinished = next
		p.pending = append(p.pending[:0], p.pending[n:]...)
	}
}

// committable returns the offset to commit (Kafka's "next offset to read")
// and forgets it; ok is false when nothing new finished.
func (p *partitionTrack) committable() (offset int64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.commit < 0 {
		return 0, false
	}
	offset, p.commit = p.commit, -1
	return offset, true
}

// uncommit puts back an offset whose commit failed, unless a newer one is
// already waiting.
func (p *partitionTrack) uncommit(offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.commit < offset {
		p.commit = offset
	}
}

// lag is how many records lie between the end of the partition (as of its
// last fetch) and the first record not yet finished.
func (p *partitionTrack) lag() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nextUnfinished < 0 {
		return 0
	}
	return max(p.highWaterMark-p.nextUnfinished, 0)
}
