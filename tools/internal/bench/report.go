package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"
)

// MarshalJSON writes durations as milliseconds.
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Count int     `json:"count"`
		Min   float64 `json:"min_ms"`
		Mean  float64 `json:"mean_ms"`
		P50   float64 `json:"p50_ms"`
		P95   float64 `json:"p95_ms"`
		P99   float64 `json:"p99_ms"`
		Max   float64 `json:"max_ms"`
	}{l.Count, ms(l.Min), ms(l.Mean), ms(l.P50), ms(l.P95), ms(l.P99), ms(l.Max)})
}

// MarshalJSON adds elapsed_ms and the completed/cancelled totals, and
// writes empty maps as {} rather than null.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result // without this method
	p := plain(r)
	if p.Outcomes == nil {
		p.Outcomes = map[string]int{}
	}
	if p.Errors == nil {
		p.Errors = map[string]int{}
	}
	return json.Marshal(struct {
		plain
		ElapsedMS float64 `json:"elapsed_ms"`
		Completed int     `json:"completed"`
		Cancelled int     `json:"cancelled"`
	}{p, ms(r.Elapsed), r.Completed(), r.Cancelled()})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// WriteTable prints the result for people.
func (r Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "load\t%s, mix %s\n", r.Mode, r.Mix)
	fmt.Fprintf(tw, "orders\t%d placed, %d ended, %d unfinished\n", r.Placed, r.Done, r.Unfinished)
	fmt.Fprintf(tw, "elapsed\t%s (first CreateOrder → last terminal)\n", r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(tw, "sagas/s\t%.1f ended (offered %.1f/s)\n", r.SagasPerSec, r.OfferedPerSec)
	l := r.Latency
	fmt.Fprintf(tw, "latency\tp50 %s  p95 %s  p99 %s  max %s  (min %s, mean %s; CreateOrder → terminal)\n",
		round(l.P50), round(l.P95), round(l.P99), round(l.Max), round(l.Min), round(l.Mean))
	tw.Flush()

	fmt.Fprintln(w)
	fmt.Fprintln(tw, "OUTCOME\tORDERS\t")
	fmt.Fprintf(tw, "COMPLETED\t%d\t\n", r.Completed())
	for _, k := range slices.Sorted(maps.Keys(r.Outcomes)) {
		if k != completed {
			fmt.Fprintf(tw, "CANCELLED %s\t%d\t\n", k, r.Outcomes[k])
		}
	}
	fmt.Fprintf(tw, "not what the mix asked for\t%d\t\n", r.Unexpected)
	tw.Flush()

	fmt.Fprintln(w)
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "errors: none")
		return nil
	}
	fmt.Fprintln(tw, "ERROR\tCOUNT\t")
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		fmt.Fprintf(tw, "%s\t%d\t\n", k, r.Errors[k])
	}
	return tw.Flush()
}

// round keeps three significant figures or so: 1.234s, 85.2ms, 950µs.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
