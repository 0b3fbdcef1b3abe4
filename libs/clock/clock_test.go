package clock

import (
	"testing"
	"time"
)

func TestManualMovesOnlyWhenTold(t *testing.T) {
	start := time.Date(2026, 11, 24, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	c := NewManual(start)
	if got := c.Now(); !got.Equal(start) || got.Location() != time.UTC {
		t.Fatalf("Now = %v, want %v in UTC", got, start)
	}
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(start.Add(90 * time.Second)) {
		t.Fatalf("after Advance: %v", got)
	}
	if got := (System{}).Now(); got.Location() != time.UTC {
		t.Fatalf("System clock not UTC: %v", got.Location())
	}
}
