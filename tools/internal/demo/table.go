package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

// WriteTable prints one row per order (scenario, order id tail, outcome,
// CreateOrder → terminal, expected or not) with its step timeline below it
// (each step's time after the order was created), then skipped paths and
// the audit's findings.
func (res *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSCENARIO\tORDER\tOUTCOME\tTOOK\tAS EXPECTED\t")
	for i, p := range res.Orders {
		took, ok := "-", "yes"
		if p.Took > 0 {
			took = p.Took.Round(time.Millisecond).String()
		}
		if !p.AsExpected() {
			ok = "NO, wanted " + strings.Join(p.Expect, " or ")
		}
		id := p.ID
		if id == "" {
			id = "(none)"
		}
		outcome := "PENDING"
		if p.Order != nil {
			outcome = describe(p.Order)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t\n", i+1, p.Scenario, id, outcome, took, ok)
	}
	tw.Flush()

	fmt.Fprintln(w, "\nstep timelines (time after CreateOrder):")
	for i, p := range res.Orders {
		fmt.Fprintf(w, "%2d %s\n", i+1, p.Scenario)
		if p.Note != "" {
			fmt.Fprintf(w, "     note: %s\n", p.Note)
		}
		if p.Err != nil {
			fmt.Fprintf(w, "     error: %v\n", p.Err)
		}
		if p.Order == nil {
			continue
		}
		created := p.Order.GetCreateTime().AsTime()
		// In time order; the history is in arrival order, which compensations
		// racing across topics can make non-monotonic.
		steps := slices.Clone(p.Order.GetSteps())
		slices.SortStableFunc(steps, func(a, b *orderv1.Step) int {
			return a.GetOccurredAt().AsTime().Compare(b.GetOccurredAt().AsTime())
		})
		var parts []string
		for _, st := range steps {
			at := st.GetOccurredAt().AsTime().Sub(created).Round(time.Millisecond)
			parts = append(parts, fmt.Sprintf("+%s %s", at, stepName(st.GetEventType())))
		}
		for _, l := range wrap(parts, " → ", 100) {
			fmt.Fprintf(w, "     %s\n", l)
		}
	}
	if len(res.Skipped) > 0 {
		fmt.Fprintln(w, "\nskipped:")
		for _, s := range res.Skipped {
			fmt.Fprintf(w, "  - %s\n", s)
		}
	}
	s := res.Summary
	fmt.Fprintf(w, "\naudit: %d orders (completed %d, cancelled %d, pending %d), invariants %s\n", s.Orders, s.Completed, s.Cancelled, s.Pending, s.Invariants)
	for _, v := range s.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
	return nil
}

// wrap joins parts with sep into lines of at most width characters (a part
// longer than width gets a line of its own); continuation lines start with sep.
func wrap(parts []string, sep string, width int) []string {
	var lines []string
	cur := ""
	for _, p := range parts {
		switch {
		case cur == "":
			cur = p
		case len(cur)+len(sep)+len(p) > width:
			lines = append(lines, cur+sep)
			cur = p
		default:
			cur += sep + p
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// WriteJSONLine writes the summary as one JSON line.
func (s Summary) WriteJSONLine(w io.Writer) error {
	if s.Violations == nil {
		s.Violations = []string{}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
