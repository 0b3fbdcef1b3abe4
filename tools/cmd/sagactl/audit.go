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

	"github.com/sagasuite/sagasuite/tools/internal/audit"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sagactl audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addrs suite.Addrs
	// Defaults: the services' documented local ports (services/README.md).
	fs.StringVar(&addrs.Order, "order", "127.0.0.1:50051", "order service gRPC `address`")
	fs.StringVar(&addrs.Inventory, "inventory", "127.0.0.1:50052", "inventory service gRPC `address`")
	fs.StringVar(&addrs.Payment, "payment", "127.0.0.1:50053", "payment service gRPC `address`")
	fs.StringVar(&addrs.Shipping, "shipping", "127.0.0.1:50054", "shipping service gRPC `address`")
	fs.StringVar(&addrs.Notification, "notification", "127.0.0.1:50055", "notification service gRPC `address`")
	customers := fs.String("customers", "", "comma-separated customer `ids` whose orders, payments and shipments to audit (required)")
	skus := fs.String("skus", "", "comma-separated `SKUs` whose stock to audit; they should be ordered only by these customers")
	gateway := fs.String("gateway", "", "payment gateway base `URL` whose own ledger must match payment per order (the dev stack's: http://127.0.0.1:8086; default: not compared)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	wait := fs.Duration("wait", 0, "repeat the audit until it is clean, for at most this `long` (sagas may still be settling)")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on one audit's RPCs")
	tokens := addTokenFlags(fs, "sagactl-audit", false)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sagactl audit --customers ID,ID [--skus SKU,SKU] [--order ADDR ...] [--json] [--wait 30s]")
		fmt.Fprintln(stderr, "\nChecks through the services' gRPC APIs that every order of the customers ended and that stock,")
		fmt.Fprintln(stderr, "money (and the payment gateway's own ledger, --gateway), shipments and the saga log add up.")
		fmt.Fprintln(stderr, "Exit status 1 when it finds violations.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	scope := audit.Scope{CustomerIDs: splitList(*customers), SKUs: splitList(*skus), GatewayURL: *gateway}
	if len(scope.CustomerIDs) == 0 {
		fmt.Fprintln(stderr, "sagactl audit: --customers is required")
		fs.Usage()
		return exitError
	}

	token, err := tokens.source(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl audit: %v\n", err)
		return exitError
	}
	conns, err := suite.Dial(addrs, dialOptions(token)...)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl audit: %v\n", err)
		return exitError
	}
	defer conns.Close()

	rep, err := collectReport(ctx, conns.Clients, scope, *timeout, *wait)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl audit: %v\n", err)
		return exitError
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if rep.Violations == nil {
			rep.Violations = []string{} // [] rather than null for consumers
		}
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "sagactl audit: %v\n", err)
			return exitError
		}
	} else {
		printReport(stdout, rep)
	}
	if !rep.OK() {
		return exitProblems
	}
	return exitOK
}

// collectReport audits once, or with wait > 0 repeats until clean for at most wait.
func collectReport(ctx context.Context, c audit.Clients, scope audit.Scope, timeout, wait time.Duration) (audit.Report, error) {
	if wait <= 0 {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return audit.Run(ctx, c, scope)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return audit.Await(ctx, c, scope, 500*time.Millisecond)
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func printReport(w io.Writer, rep audit.Report) {
	fmt.Fprintf(w, "orders: %d (completed %d, cancelled %d, pending %d)\n", rep.Orders, rep.Completed, rep.Cancelled, rep.Pending)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(rep.Stock) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "SKU\tADDED\tAVAILABLE\tRESERVED\tSOLD\tRESTORED\tIN COMPLETED ORDERS\t")
		for _, s := range rep.Stock {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.SKU, s.Added, s.Available, s.Reserved, s.Sold, s.Restored, s.OrderedUnits)
		}
		tw.Flush()
	}
	if len(rep.Money) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "CURRENCY\tCAPTURED\tREFUNDED\tNET\tCOMPLETED ORDERS\t")
		for _, m := range rep.Money {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", m.Currency, m.Captured, m.Refunded, m.Captured-m.Refunded, m.CompletedTotal)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if rep.OK() {
		fmt.Fprintln(w, "violations: none")
		return
	}
	fmt.Fprintf(w, "violations: %d\n", len(rep.Violations))
	for _, v := range rep.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}
