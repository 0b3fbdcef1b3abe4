package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// stuckSaga is one line of `sagactl stuck --json`.
type stuckSaga struct {
	OrderID      string    `json:"order_id"`
	CustomerID   string    `json:"customer_id"`
	LastStep     string    `json:"last_step"`
	WaitingFor   string    `json:"waiting_for"`
	WaitingOn    string    `json:"waiting_on"`
	LastProgress time.Time `json:"last_progress"`
	StalledSecs  float64   `json:"stalled_seconds"`
	Deadline     time.Time `json:"deadline"`
}

// stuckReport is the whole of `sagactl stuck --json`.
type stuckReport struct {
	OlderThanSecs float64     `json:"older_than_seconds"`
	Sagas         []stuckSaga `json:"sagas"`
	Truncated     bool        `json:"truncated"`
}

func runStuck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sagactl stuck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrs := addrFlags(fs)
	olderThan := fs.Duration("older-than", 10*time.Second, "list sagas without progress for at least this `long` (1s to 168h)")
	limit := fs.Int("limit", 100, "show at most this many sagas (1–100), longest stalled first")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on the call")
	tokens := addTokenFlags(fs, "sagactl-stuck", false)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sagactl stuck [--older-than 10s] [--json] [--order ADDR]")
		fmt.Fprintln(stderr, "\nPENDING orders whose saga made no progress for --older-than, with the step each waits on and")
		fmt.Fprintln(stderr, "the service expected to take it, before their deadline cancels them. Needs an operator or service token.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if *olderThan < time.Second || *olderThan > 7*24*time.Hour {
		fmt.Fprintf(stderr, "sagactl stuck: --older-than must be between 1s and 168h, got %s\n", *olderThan)
		return exitError
	}
	if *limit < 1 || *limit > 100 {
		fmt.Fprintf(stderr, "sagactl stuck: --limit must be between 1 and 100, got %d\n", *limit)
		return exitError
	}
	token, err := tokens.source(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl stuck: %v\n", err)
		return exitError
	}
	conns, err := suite.Dial(*addrs, dialOptions(token)...)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl stuck: %v\n", err)
		return exitError
	}
	defer conns.Close()

	callCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := conns.Clients.Order.ListStuckSagas(callCtx, &orderv1.ListStuckSagasRequest{
		OlderThan: durationpb.New(*olderThan), PageSize: int32(*limit)})
	if err != nil {
		fmt.Fprintf(stderr, "sagactl stuck: list stuck sagas: %v\n", err)
		return exitError
	}
	report := stuckReport{OlderThanSecs: olderThan.Seconds(), Sagas: []stuckSaga{}, Truncated: resp.GetTruncated()}
	for _, s := range resp.GetSagas() {
		report.Sagas = append(report.Sagas, stuckSaga{
			OrderID: s.GetOrderId(), CustomerID: s.GetCustomerId(),
			LastStep: eventName(s.GetLastStep()), WaitingFor: eventName(s.GetWaitingFor()), WaitingOn: s.GetWaitingOn(),
			LastProgress: s.GetLastProgressTime().AsTime(), StalledSecs: s.GetStalledFor().AsDuration().Seconds(),
			Deadline: s.GetDeadline().AsTime(),
		})
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(report)
	} else {
		err = writeStuckTable(stdout, report)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sagactl stuck: %v\n", err)
		return exitError
	}
	return exitOK
}

// eventName is "EVENT_TYPE_STOCK_RESERVED" → "STOCK_RESERVED"; "" for none.
func eventName(t eventsv1.EventType) string {
	if t == eventsv1.EventType_EVENT_TYPE_UNSPECIFIED {
		return ""
	}
	return strings.TrimPrefix(t.String(), "EVENT_TYPE_")
}

func writeStuckTable(w io.Writer, r stuckReport) error {
	if len(r.Sagas) == 0 {
		_, err := fmt.Fprintf(w, "no saga without progress for %s\n", time.Duration(r.OlderThanSecs*float64(time.Second)))
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tLAST STEP\tWAITING FOR\tON\tSTALLED\tDEADLINE IN")
	for _, s := range r.Sagas {
		deadlineIn := s.Deadline.Sub(s.LastProgress) - time.Duration(s.StalledSecs*float64(time.Second))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.OrderID, s.LastStep, s.WaitingFor, s.WaitingOn,
			time.Duration(s.StalledSecs*float64(time.Second)).Round(time.Second), deadlineIn.Round(time.Second))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Truncated {
		_, err := fmt.Fprintf(w, "(more stuck sagas than the %d shown)\n", len(r.Sagas))
		return err
	}
	return nil
}
