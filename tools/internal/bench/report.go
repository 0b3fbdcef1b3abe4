package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
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
	} else {
		fmt.Fprintln(tw, "ERROR\tCOUNT\t")
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			fmt.Fprintf(tw, "%s\t%d\t\n", k, r.Errors[k])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if r.Instruments != nil {
		fmt.Fprintln(w)
		return r.Instruments.WriteTable(w)
	}
	return nil
}

// WriteTable prints CPU and operations per completed saga.
func (in *Instruments) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "CPU per completed saga (%d completed; /proc utime+stime, child processes included)\n", in.Per)
	fmt.Fprintln(tw, "PROCESS\tCPU ms\tms/saga\tFOUND BY\tPIDS\t")
	row := func(p ProcCPU) {
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%s\t%s\t\n", p.Name, p.CPUMS, p.PerSaga, p.FoundBy, pidList(p.PIDs))
	}
	for _, p := range in.CPU {
		if p.Suite {
			row(p)
		}
	}
	fmt.Fprintf(tw, "suite total\t%.0f\t%.2f\t\t\t\n", in.SuiteCPUMS, in.SuiteMSPerSag)
	for _, p := range in.CPU {
		if !p.Suite {
			row(p)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(in.Ops) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "operations per completed saga (MariaDB: server-wide SHOW GLOBAL STATUS; services: their /metrics)")
		fmt.Fprintln(tw, "SOURCE\tCOUNTER\tDELTA\tper saga\t")
		for _, o := range in.Ops {
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2f\t\n", o.Source, o.Counter, o.Delta, o.PerSaga)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, n := range in.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

// pidList shows a few pids and how many more.
func pidList(pids []int) string {
	const shown = 4
	parts := make([]string, 0, shown+1)
	for i, p := range pids {
		if i == shown {
			parts = append(parts, fmt.Sprintf("+%d", len(pids)-shown))
			break
		}
		parts = append(parts, fmt.Sprint(p))
	}
	return strings.Join(parts, " ")
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
