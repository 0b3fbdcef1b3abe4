package bus

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// The scheduler gives per-key isolation without head-of-line blocking: each
// key (order id) has its own FIFO of fetched records, only its head runs, and
// a pool of workers takes whichever key is ready next. A key whose head fails
// transiently waits out its backoff off the workers, holding back only its own
// later records; every other key, on the same partition or not, keeps flowing.
// The committed offset still never passes an unfinished record (partitionTrack).
//
// Ready keys run in key order, not arrival order: with time-ordered keys
// (UUIDv7 order ids) the oldest saga's next step goes first. Past capacity that
// finishes sagas depth-first — arrival order moved every saga one step at a
// time, so under a backlog all of them reached their deadline together
// (measured: 4,000 orders at 200/s, 38 completed, 3,962 TIMEOUT).
//
// The old design hashed keys onto 8 FIFO worker queues: one hot stock row or one
// retrying event stalled every key that hashed to the same queue.

// outcome is what became of one attempt at a record.
type outcome int

const (
	finished  outcome = iota // handled or dead-lettered: its offset may be committed
	retry                    // transient failure: run it again after a backoff
	abandoned                // shutting down or partition revoked: leave it uncommitted
)

// delivery is one fetched record on its way through the consumer.
type delivery struct {
	msg      kafka.Message
	part     *partition
	env      *eventsv1.Envelope // decoded on the first attempt
	attempts int                // failed attempts so far
}

// partition is one partition assigned to this member in the current generation.
type partition struct {
	topic string
	id    int
	track *partitionTrack
	// ctx is the handlers' context for its records: it outlives the
	// generation by the drain timeout, so in-flight effects can finish.
	ctx      context.Context
	closed   atomic.Bool    // revoked or shutting down: queued records are dropped
	inflight sync.WaitGroup // records with a worker right now
}

// keyQueue is one key's records in arrival order.
type keyQueue struct {
	key   string
	items []*delivery
	// running: the head is with a worker or waiting for its retry; the queue
	// is in the ready list exactly when !running and it has items.
	running bool
}

type scheduler struct {
	mu      sync.Mutex
	cond    *sync.Cond
	keys    map[string]*keyQueue
	ready   readyHeap
	stopped bool
	// slots bounds records fetched and not finished (memory): fetching waits
	// when it is full, which is the consumer's back-pressure.
	slots    chan struct{}
	retrying atomic.Int64 // keys waiting out a retry backoff (a gauge)
	workers  sync.WaitGroup

	run     func(*delivery) outcome
	backoff func(attempts int) time.Duration
	onDone  func(*delivery) // after a record finished (offset tracking, commit wake-up)
}

func newScheduler(workers, maxInFlight int, run func(*delivery) outcome, backoff func(int) time.Duration, onDone func(*delivery)) *scheduler {
	s := &scheduler{
		keys: map[string]*keyQueue{}, slots: make(chan struct{}, maxInFlight),
		run: run, backoff: backoff, onDone: onDone,
	}
	s.cond = sync.NewCond(&s.mu)
	for range workers {
		s.workers.Add(1)
		go s.work()
	}
	return s
}

// acquire takes a slot for a record about to be fetched; false when ctx ended.
func (s *scheduler) acquire(ctx context.Context) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *scheduler) release() { <-s.slots }

// enqueue adds a fetched record (holding a slot) behind its key's others.
func (s *scheduler) enqueue(d *delivery) {
	key := string(d.msg.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.keys[key]
	if q == nil {
		q = &keyQueue{key: key}
		s.keys[key] = q
	}
	q.items = append(q.items, d)
	if !q.running && len(q.items) == 1 {
		heap.Push(&s.ready, q)
		s.cond.Signal()
	}
}

func (s *scheduler) work() {
	defer s.workers.Done()
	for {
		s.mu.Lock()
		for len(s.ready) == 0 && !s.stopped {
			s.cond.Wait()
		}
		if s.stopped {
			s.mu.Unlock()
			return
		}
		q := heap.Pop(&s.ready).(*keyQueue)
		if len(q.items) == 0 || q.running {
			s.mu.Unlock() // emptied by a revocation while it waited in the list
			continue
		}
		d := q.items[0]
		q.running = true
		d.part.inflight.Add(1)
		s.mu.Unlock()

		out := s.run(d)
		d.part.inflight.Done()

		s.mu.Lock()
		if out == retry {
			d.attempts++
			s.retrying.Add(1)
			time.AfterFunc(s.backoff(d.attempts), func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				s.retrying.Add(-1)
				q.running = false
				if d.part.closed.Load() && len(q.items) > 0 && q.items[0] == d {
					s.drop(q) // revoked while it waited
				}
				s.settle(string(d.msg.Key), q)
			})
			s.mu.Unlock()
			continue
		}
		q.items[0] = nil
		q.items = q.items[1:]
		q.running = false
		s.settle(string(d.msg.Key), q)
		s.mu.Unlock()
		s.release()
		if out == finished {
			// Also when its partition closed meanwhile: the drain's last
			// commit then includes it.
			s.onDone(d)
		}
	}
}

// drop removes q's head, giving its slot back. Called with mu held.
func (s *scheduler) drop(q *keyQueue) {
	q.items[0] = nil
	q.items = q.items[1:]
	s.release()
}

// settle puts q back in the ready list, or forgets it when empty. mu held.
func (s *scheduler) settle(key string, q *keyQueue) {
	if q.running {
		return
	}
	if len(q.items) > 0 {
		heap.Push(&s.ready, q)
		s.cond.Signal()
		return
	}
	if s.keys[key] == q {
		delete(s.keys, key)
	}
}

// closePartitions drops every queued record of parts (revoked, or the member
// is stopping): they stay uncommitted and the group delivers them again. A
// record with a worker right now finishes; one waiting for a retry is dropped
// when its backoff ends.
func (s *scheduler) closePartitions(parts []*partition) {
	closing := make(map[*partition]bool, len(parts))
	for _, p := range parts {
		p.closed.Store(true)
		closing[p] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, q := range s.keys {
		kept := q.items[:0]
		for i, d := range q.items {
			if closing[d.part] && !(i == 0 && q.running) {
				s.release()
				continue
			}
			kept = append(kept, d)
		}
		clear(q.items[len(kept):])
		q.items = kept
		if len(q.items) == 0 && !q.running {
			delete(s.keys, key) // a copy still in the ready list is skipped
		}
	}
}

// stop ends the workers once they finish what they run. Callers close every
// partition first.
func (s *scheduler) stop() {
	s.mu.Lock()
	s.stopped = true
	s.cond.Broadcast()
	s.mu.Unlock()
	s.workers.Wait()
}

// cappedBackoff is exponential from initial to max with jitter (half to full
// interval), so keys that failed together do not retry in lock-step.
func cappedBackoff(initial, maxInterval time.Duration) func(attempts int) time.Duration {
	return func(attempts int) time.Duration {
		d := initial
		for i := 1; i < attempts && d < maxInterval; i++ {
			d *= 2
		}
		d = min(d, maxInterval)
		return d/2 + rand.N(d/2+1)
	}
}

// readyHeap holds the keys ready to run, smallest key first.
type readyHeap []*keyQueue

func (h readyHeap) Len() int           { return len(h) }
func (h readyHeap) Less(i, j int) bool { return h[i].key < h[j].key }
func (h readyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *readyHeap) Push(x any)        { *h = append(*h, x.(*keyQueue)) }
func (h *readyHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return q
}
