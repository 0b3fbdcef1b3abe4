package bus

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// schedHarness runs a scheduler over fake records; outcomes come from fn.
type schedHarness struct {
	s    *scheduler
	mu   sync.Mutex
	done []string // "key/offset" in finishing order
}

func newSchedHarness(t *testing.T, workers, slots int, fn func(*delivery) outcome) *schedHarness {
	h := &schedHarness{}
	h.s = newScheduler(workers, slots, fn, func(int) time.Duration { return time.Millisecond }, func(d *delivery) {
		d.part.track.done(d.msg.Offset)
		h.mu.Lock()
		h.done = append(h.done, fmt.Sprintf("%s/%d", d.msg.Key, d.msg.Offset))
		h.mu.Unlock()
	})
	t.Cleanup(h.s.stop)
	return h
}

func (h *schedHarness) add(t *testing.T, p *partition, key string, offset int64) {
	if !h.s.acquire(context.Background()) {
		t.Fatal("no slot")
	}
	p.track.fetched(offset, offset+1)
	h.s.enqueue(&delivery{msg: kafka.Message{Topic: p.topic, Partition: p.id, Key: []byte(key), Offset: offset}, part: p})
}

func (h *schedHarness) finished() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.done...)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func testPartition() *partition {
	return &partition{topic: "t", track: newPartitionTrack(0), ctx: context.Background()}
}

// A key that keeps failing holds back only its own later records; the other
// keys of the same partition finish, and the commit stays below the stuck one.
func TestSchedulerRetryingKeyDoesNotBlockOtherKeys(t *testing.T) {
	var mu sync.Mutex
	healthy := false
	attempts := map[int64]int{}
	h := newSchedHarness(t, 2, 100, func(d *delivery) outcome {
		mu.Lock()
		defer mu.Unlock()
		attempts[d.msg.Offset]++
		if string(d.msg.Key) == "hot" && !healthy {
			return retry
		}
		return finished
	})
	p := testPartition()
	h.add(t, p, "hot", 0)
	for i := int64(1); i <= 20; i++ {
		key := fmt.Sprintf("k%d", i%5)
		if i == 7 {
			key = "hot" // queued behind the stuck head of its key
		}
		h.add(t, p, key, i)
	}
	waitUntil(t, "the 19 records of other keys", func() bool { return len(h.finished()) == 19 })
	waitUntil(t, "retries of the failing head", func() bool { mu.Lock(); defer mu.Unlock(); return attempts[0] >= 3 })
	if off, ok := p.track.committable(); ok {
		t.Fatalf("committable %d while offset 0 is unfinished", off)
	}
	mu.Lock()
	if attempts[7] != 0 {
		t.Errorf("hot's second record ran %d times before its first succeeded", attempts[7])
	}
	healthy = true
	mu.Unlock()
	waitUntil(t, "all 21", func() bool { return len(h.finished()) == 21 })
	got := h.finished()
	if got[19] != "hot/0" || got[20] != "hot/7" {
		t.Errorf("hot's records finished as %v, want hot/0 then hot/7 last", got[19:])
	}
	if off, ok := p.track.committable(); !ok || off != 21 {
		t.Errorf("committable %d %v, want 21", off, ok)
	}
}

// Records of one key run one at a time in fetch order, across many workers.
func TestSchedulerKeepsPerKeyOrder(t *testing.T) {
	var mu sync.Mutex
	running := map[string]bool{}
	seen := map[string][]int64{}
	h := newSchedHarness(t, 8, 1000, func(d *delivery) outcome {
		k := string(d.msg.Key)
		mu.Lock()
		if running[k] {
			mu.Unlock()
			t.Errorf("key %s ran twice at once", k)
			return finished
		}
		running[k] = true
		mu.Unlock()
		time.Sleep(50 * time.Microsecond)
		mu.Lock()
		running[k] = false
		seen[k] = append(seen[k], d.msg.Offset)
		mu.Unlock()
		return finished
	})
	p := testPartition()
	for i := int64(0); i < 500; i++ {
		h.add(t, p, fmt.Sprintf("k%d", i%7), i)
	}
	waitUntil(t, "500 records", func() bool { return len(h.finished()) == 500 })
	for k, offs := range seen {
		for i := 1; i < len(offs); i++ {
			if offs[i] < offs[i-1] {
				t.Fatalf("key %s out of order: %v", k, offs)
			}
		}
	}
}

// A revoked partition's queued records are dropped (not run, not committed)
// and give their slots back; a record waiting for a retry is dropped too.
func TestSchedulerClosePartitionsDropsQueuedRecords(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	ran := map[int64]int{}
	h := newSchedHarness(t, 1, 10, func(d *delivery) outcome {
		mu.Lock()
		ran[d.msg.Offset]++
		mu.Unlock()
		switch string(d.msg.Key) {
		case "slow":
			<-release
			return finished
		case "failing":
			return retry
		}
		return finished
	})
	p := testPartition()
	h.add(t, p, "failing", 0)
	waitUntil(t, "the failing record's first attempt", func() bool { mu.Lock(); defer mu.Unlock(); return ran[0] > 0 })
	h.add(t, p, "slow", 1)
	waitUntil(t, "the slow record to start", func() bool { mu.Lock(); defer mu.Unlock(); return ran[1] == 1 })
	h.add(t, p, "a", 2) // queued: the only worker is busy
	h.add(t, p, "b", 3)
	h.s.closePartitions([]*partition{p})
	close(release)
	waitUntil(t, "all slots back", func() bool { return len(h.s.slots) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if ran[2] != 0 || ran[3] != 0 {
		t.Errorf("queued records of a revoked partition ran: %v", ran)
	}
	if got := h.finished(); len(got) != 1 || got[0] != "slow/1" {
		t.Errorf("finished %v, want only slow/1 (it was running when its partition closed)", got)
	}
}

func TestCappedBackoffGrowsToTheCapWithJitter(t *testing.T) {
	next := cappedBackoff(10*time.Millisecond, 80*time.Millisecond)
	for attempt, want := range map[int]time.Duration{1: 10, 2: 20, 3: 40, 4: 80, 10: 80, 100: 80} {
		want *= time.Millisecond
		for range 20 {
			if d := next(attempt); d < want/2 || d > want {
				t.Fatalf("attempt %d: %v, want within [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

// Ready keys run smallest first: with time-ordered keys the oldest saga's
// next step overtakes new sagas' first steps.
func TestSchedulerRunsTheSmallestReadyKeyFirst(t *testing.T) {
	gate := make(chan struct{})
	var mu sync.Mutex
	var order []string
	h := newSchedHarness(t, 1, 100, func(d *delivery) outcome {
		if string(d.msg.Key) == "blocker" {
			<-gate
		}
		mu.Lock()
		order = append(order, string(d.msg.Key))
		mu.Unlock()
		return finished
	})
	p := testPartition()
	h.add(t, p, "blocker", 0) // holds the only worker while the others queue up
	waitUntil(t, "the blocker to start", func() bool {
		h.s.mu.Lock()
		defer h.s.mu.Unlock()
		return len(h.s.ready) == 0
	})
	for i, k := range []string{"k5", "k3", "k9", "k1"} {
		h.add(t, p, k, int64(i+1))
	}
	close(gate)
	waitUntil(t, "all five", func() bool { return len(h.finished()) == 5 })
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(order, ","); got != "blocker,k1,k3,k5,k9" {
		t.Errorf("ran %s, want blocker,k1,k3,k5,k9", got)
	}
}
