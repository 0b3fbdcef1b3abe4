package bus

import (
	"testing"

	"github.com/segmentio/kafka-go"
)

func msg(p int, off int64) kafka.Message { return kafka.Message{Topic: "t", Partition: p, Offset: off} }

func offsetsOf(ms []kafka.Message) map[int]int64 {
	out := map[int]int64{}
	for _, m := range ms {
		out[m.Partition] = m.Offset
	}
	return out
}

func TestOffsetTrackerCommitsOnlyTheFinishedPrefix(t *testing.T) {
	tr := newOffsetTracker()
	for _, o := range []int64{10, 11, 12} {
		tr.fetched(msg(0, o))
	}
	tr.fetched(msg(1, 5))

	tr.done(msg(0, 11)) // 10 still running: nothing of partition 0 may be committed
	tr.done(msg(1, 5))
	if got := offsetsOf(tr.committable()); len(got) != 1 || got[1] != 5 {
		t.Fatalf("after 11 and p1/5 done: %v, want only p1 at 5", got)
	}
	tr.done(msg(0, 10))
	if got := offsetsOf(tr.committable()); got[0] != 11 {
		t.Fatalf("after 10 done: %v, want p0 at 11", got)
	}
	if got := tr.committable(); len(got) != 0 {
		t.Fatalf("committable twice: %v", got)
	}
	tr.done(msg(0, 12))
	if got := offsetsOf(tr.committable()); got[0] != 12 {
		t.Fatalf("after 12 done: %v, want p0 at 12", got)
	}
}

func TestOffsetTrackerStartsOverWhenThePartitionRewinds(t *testing.T) {
	tr := newOffsetTracker()
	tr.fetched(msg(0, 20))
	tr.fetched(msg(0, 21))
	tr.fetched(msg(0, 20)) // redelivered after a rebalance
	tr.done(msg(0, 21))    // a completion of the old copy: not a prefix of the new stream
	if got := tr.committable(); len(got) != 0 {
		t.Fatalf("committed %v before the redelivered 20 finished", got)
	}
	tr.done(msg(0, 20))
	if got := offsetsOf(tr.committable()); got[0] != 20 {
		t.Fatalf("got %v, want p0 at 20", got)
	}
}

func TestOffsetTrackerLagCountsWhatIsNotFinished(t *testing.T) {
	tr := newOffsetTracker()
	at := func(p int, off, hwm int64) kafka.Message {
		return kafka.Message{Topic: "t", Partition: p, Offset: off, HighWaterMark: hwm}
	}
	tr.fetched(at(0, 10, 20)) // records 10..19 exist
	tr.fetched(at(0, 11, 20))
	tr.fetched(at(1, 0, 5))
	if got := tr.lag(); got != 10+5 {
		t.Fatalf("lag before anything finished = %d, want 15", got)
	}
	tr.done(at(0, 11, 20)) // out of order: 10 still runs
	if got := tr.lag(); got != 15 {
		t.Fatalf("lag with 10 unfinished = %d, want 15", got)
	}
	tr.done(at(0, 10, 20))
	tr.done(at(1, 0, 5))
	if got := tr.lag(); got != 8+4 {
		t.Fatalf("lag after 10, 11 and p1/0 = %d, want 12", got)
	}
}
