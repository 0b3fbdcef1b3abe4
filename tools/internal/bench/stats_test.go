package bench

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	hundred := make([]time.Duration, 100) // 1..100 ms
	for i := range hundred {
		hundred[i] = ms(i + 1)
	}
	cases := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value is every percentile", []time.Duration{ms(7)}, 99, ms(7)},
		{"p50 of 1..100", hundred, 50, ms(50)},
		{"p95 of 1..100", hundred, 95, ms(95)},
		{"p99 of 1..100", hundred, 99, ms(99)},
		{"p100 is the max", hundred, 100, ms(100)},
		{"tiny p is the min", hundred, 0.001, ms(1)},
		{"p50 of an even pair is the lower", []time.Duration{ms(1), ms(2)}, 50, ms(1)},
		{"p99 of 10 values is the max", hundred[:10], 99, ms(10)},
		{"p95 of 20 values is the 19th", hundred[:20], 95, ms(19)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("percentile(%d values, %v) = %v, want %v", len(tc.sorted), tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarizeSortsAndSummarizes(t *testing.T) {
	ds := make([]time.Duration, 1000)
	for i := range ds {
		ds[i] = time.Duration(i+1) * time.Millisecond
	}
	rand.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	got := summarize(ds)
	want := Latency{Count: 1000, Min: time.Millisecond, Mean: 500500 * time.Microsecond,
		P50: 500 * time.Millisecond, P95: 950 * time.Millisecond, P99: 990 * time.Millisecond, Max: time.Second}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if (summarize(nil) != Latency{}) {
		t.Errorf("summarize(nil) = %+v, want zero", summarize(nil))
	}
}

func TestResultJSON(t *testing.T) {
	r := Result{Mode: "closed loop, concurrency 2", Placed: 3, Done: 3, Elapsed: 1500 * time.Millisecond,
		Latency:  Latency{Count: 3, P50: 1234567 * time.Nanosecond},
		Outcomes: map[string]int{"COMPLETED": 2, "PAYMENT_FAILED": 1}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"elapsed_ms":1500`, `"p50_ms":1.234`, `"completed":2`, `"cancelled":1`, `"errors":{}`, `"placed":3`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
}
