package bench

import "time"

// schedule is the open-loop timetable: order i (from 0) is due at
// start + i/rate, whatever happened to the orders before it, so a slow stack
// does not slow the offered load down (no coordinated omission).
type schedule struct {
	start time.Time
	rate  float64 // orders per second, > 0
}

// at is when order i is due.
func (s schedule) at(i int) time.Time {
	return s.start.Add(time.Duration(float64(i) / s.rate * float64(time.Second)))
}

// dueBy is how many orders are due at or before t.
func (s schedule) dueBy(t time.Time) int {
	if t.Before(s.start) {
		return 0
	}
	n := int(t.Sub(s.start).Seconds()*s.rate) + 1
	// Guard float rounding at exact boundaries: keep at(n-1) ≤ t < at(n).
	for n > 0 && s.at(n-1).After(t) {
		n--
	}
	for !s.at(n).After(t) {
		n++
	}
	return n
}

// limits says when to stop placing orders: after orders of them (0: no
// count limit) or once duration has passed since start (0: no time limit).
type limits struct {
	orders   int
	duration time.Duration
}

// more reports whether order i (from 0) may still be placed at now.
func (l limits) more(i int, start, now time.Time) bool {
	if l.orders > 0 && i >= l.orders {
		return false
	}
	if l.duration > 0 && now.Sub(start) >= l.duration {
		return false
	}
	return true
}
