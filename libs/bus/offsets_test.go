package bus

import "testing"

func TestPartitionTrackCommitsOnlyTheFinishedPrefix(t *testing.T) {
	p := newPartitionTrack(10)
	for _, o := range []int64{10, 11, 12} {
		p.fetched(o, 13)
	}
	p.done(11) // 10 still running: nothing may be committed
	if off, ok := p.committable(); ok {
		t.Fatalf("committable %d while 10 runs", off)
	}
	p.done(10)
	if off, ok := p.committable(); !ok || off != 12 {
		t.Fatalf("after 10 and 11: committable %d %v, want 12 (the next offset to read)", off, ok)
	}
	if off, ok := p.committable(); ok {
		t.Fatalf("committable twice: %d", off)
	}
	p.done(12)
	if off, ok := p.committable(); !ok || off != 13 {
		t.Fatalf("after 12: %d %v, want 13", off, ok)
	}
}

func TestPartitionTrackUncommitKeepsTheNewest(t *testing.T) {
	p := newPartitionTrack(0)
	p.fetched(0, 3)
	p.fetched(1, 3)
	p.done(0)
	off, _ := p.committable() // 1, and the commit fails
	p.done(1)                 // meanwhile 2 became committable
	p.uncommit(off)
	if got, ok := p.committable(); !ok || got != 2 {
		t.Fatalf("after a failed commit of %d and a newer finish: %d %v, want 2", off, got, ok)
	}
	p.uncommit(1)
	if got, ok := p.committable(); !ok || got != 1 {
		t.Fatalf("a failed commit is retried: %d %v, want 1", got, ok)
	}
}

func TestPartitionTrackLagCountsWhatIsNotFinished(t *testing.T) {
	p := newPartitionTrack(-1) // no committed offset yet
	if got := p.lag(); got != 0 {
		t.Fatalf("lag before any fetch = %d", got)
	}
	p.fetched(10, 20) // records 10..19 exist
	p.fetched(11, 20)
	if got := p.lag(); got != 10 {
		t.Fatalf("lag before anything finished = %d, want 10", got)
	}
	p.done(11) // out of order: 10 still runs
	if got := p.lag(); got != 10 {
		t.Fatalf("lag with 10 unfinished = %d, want 10", got)
	}
	p.done(10)
	if got := p.lag(); got != 8 {
		t.Fatalf("lag after 10 and 11 = %d, want 8", got)
	}
}
