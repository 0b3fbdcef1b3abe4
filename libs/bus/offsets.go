package bus

import (
	"sync"

	"github.com/segmentio/kafka-go"
)

// offsetTracker turns out-of-order completions (workers run different keys in
// parallel) into safe commits: per partition, only the longest finished prefix
// of what was fetched is committed, so a crash never skips an unfinished event.
type offsetTracker struct {
	mu    sync.Mutex
	parts map[partitionKey]*partitionTrack
}

type partitionKey struct {
	topic     string
	partition int
}

type partitionTrack struct {
	pending []trackedOffset // fetch order
	ready   *kafka.Message  // highest finished prefix not yet committed
	// For the lag gauge: the partition's end as of the last fetch, and the
	// next offset not yet finished (everything before it is done).
	highWaterMark, nextUnfinished int64
}

type trackedOffset struct {
	msg  kafka.Message
	done bool
}

func newOffsetTracker() *offsetTracker {
	return &offsetTracker{parts: map[partitionKey]*partitionTrack{}}
}

func (t *offsetTracker) fetched(m kafka.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := partitionKey{m.Topic, m.Partition}
	p := t.parts[k]
	if p == nil {
		p = &partitionTrack{}
		t.parts[k] = p
	}
	if len(p.pending) == 0 && p.ready == nil && p.nextUnfinished == 0 {
		p.nextUnfinished = m.Offset
	}
	p.highWaterMark = m.HighWaterMark
	if n := len(p.pending); n > 0 && m.Offset <= p.pending[n-1].msg.Offset {
		// The group rewound this partition (rebalance): start over from what
		// it delivers now; completions of the old copies are ignored.
		p.pending = p.pending[:0]
		p.ready = nil
		p.nextUnfinished = m.Offset
	}
	p.pending = append(p.pending, trackedOffset{msg: m})
}

func (t *offsetTracker) done(m kafka.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partitionKey{m.Topic, m.Partition}]
	if p == nil {
		return
	}
	for i := range p.pending {
		if p.pending[i].msg.Offset == m.Offset {
			p.pending[i].done = true
			break
		}
	}
	n := 0
	for n < len(p.pending) && p.pending[n].done {
		n++
	}
	if n > 0 {
		last := p.pending[n-1].msg
		p.ready = &last
		p.nextUnfinished = last.Offset + 1
		p.pending = append(p.pending[:0], p.pending[n:]...)
	}
}

// committable returns, per partition, the last message of the finished prefix
// (committing it commits everything before it) and forgets it.
func (t *offsetTracker) committable() []kafka.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []kafka.Message
	for _, p := range t.parts {
		if p.ready != nil {
			out = append(out, *p.ready)
			p.ready = nil
		}
	}
	return out
}

// lag is, over all partitions, how many records lie between the end of each
// partition (as of its last fetch) and the first record not yet finished:
// the consumer lag of the group member.
func (t *offsetTracker) lag() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var total int64
	for _, p := range t.parts {
		if d := p.highWaterMark - p.nextUnfinished; d > 0 {
			total += d
		}
	}
	return total
}
