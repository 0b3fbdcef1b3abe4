package bench

import (
	"testing"
	"time"
)

func TestScheduleIsATimetable(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s := schedule{start: start, rate: 40} // one every 25 ms
	for i, want := range map[int]time.Duration{0: 0, 1: 25 * time.Millisecond, 40: time.Second, 400: 10 * time.Second} {
		if got := s.at(i).Sub(start); got != want {
			t.Errorf("at(%d) = start+%v, want start+%v", i, got, want)
		}
	}
	for _, tc := range []struct {
		after time.Duration
		want  int
	}{
		{-time.Millisecond, 0},
		{0, 1}, // order 0 is due at once
		{24 * time.Millisecond, 1},
		{25 * time.Millisecond, 2}, // exactly on order 1's time
		{time.Second, 41},
		{10*time.Second + time.Millisecond, 401},
	} {
		if got := s.dueBy(start.Add(tc.after)); got != tc.want {
			t.Errorf("dueBy(start%+v) = %d, want %d", tc.after, got, tc.want)
		}
	}
	// An odd rate: the count due grows by exactly one per interval and
	// at/dueBy agree everywhere.
	s = schedule{start: start, rate: 7.3}
	for i := range 1000 {
		if got := s.dueBy(s.at(i)); got != i+1 {
			t.Fatalf("dueBy(at(%d)) = %d, want %d", i, got, i+1)
		}
		if got := s.dueBy(s.at(i + 1).Add(-time.Nanosecond)); got != i+1 {
			t.Fatalf("dueBy(just before at(%d)) = %d, want %d", i+1, got, i+1)
		}
	}
}

func TestLimits(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		l    limits
		i    int
		at   time.Duration
		want bool
	}{
		{"count: last one", limits{orders: 30}, 29, time.Hour, true},
		{"count: one too many", limits{orders: 30}, 30, 0, false},
		{"duration: inside", limits{duration: 10 * time.Second}, 1e6, 9999 * time.Millisecond, true},
		{"duration: at the end", limits{duration: 10 * time.Second}, 0, 10 * time.Second, false},
		{"both: count first", limits{orders: 5, duration: time.Minute}, 5, time.Second, false},
		{"both: time first", limits{orders: 5000, duration: time.Second}, 5, time.Second, false},
		{"both: neither yet", limits{orders: 5000, duration: time.Second}, 5, 500 * time.Millisecond, true},
	}
	for _, tc := range cases {
		if got := tc.l.more(tc.i, start, start.Add(tc.at)); got != tc.want {
			t.Errorf("%s: more(%d, +%v) = %v, want %v", tc.name, tc.i, tc.at, got, tc.want)
		}
	}
}

func TestConfigDefaultsAndConflicts(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil || c.Concurrency != 8 || c.Duration != 10*time.Second || c.Mix != AllSuccess || c.SKUs != 8 || c.Timeout != 2*time.Minute {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	if c.Mode() != "closed loop, concurrency 8" {
		t.Errorf("mode %q", c.Mode())
	}
	if c, _ := (Config{Rate: 50, Orders: 10}).withDefaults(); c.Concurrency != 0 || c.Duration != 0 || c.Mode() != "open loop at 50/s" {
		t.Errorf("open loop with a count: %+v (%s)", c, c.Mode())
	}
	for _, bad := range []Config{{Rate: 5, Concurrency: 2}, {Rate: -1}, {Orders: -1}, {Mix: Mix{Success: 50}}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
