package bench

import (
	"math"
	"slices"
	"time"
)

// Latency summarizes CreateOrder→terminal durations. Percentiles use the
// nearest-rank method: p50 of 1..100 ms is 50 ms, p99 is 99 ms, and every
// figure is one of the observed durations.
type Latency struct {
	Count int           `json:"count"`
	Min   time.Duration `json:"min_ns"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P95   time.Duration `json:"p95_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// summarize sorts ds in place and returns its summary (zero for none).
func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Latency{
		Count: len(ds),
		Min:   ds[0],
		Mean:  sum / time.Duration(len(ds)),
		P50:   percentile(ds, 50),
		P95:   percentile(ds, 95),
		P99:   percentile(ds, 99),
		Max:   ds[len(ds)-1],
	}
}

// percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of sorted:
// the smallest value with at least p% of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}
