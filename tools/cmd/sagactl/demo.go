package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/tools/internal/demo"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sagactl demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrs := addrFlags(fs)
	orderTimeout := fs.Duration("order-timeout", 3*time.Minute, "bound on the wait for one order to end")
	auditTimeout := fs.Duration("audit-timeout", 3*time.Minute, "bound on the wait for a clean audit while compensations settle")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	gateway := fs.String("gateway", "", "payment gateway base `URL` whose own ledger the audit compares with payment per order (e.g. the dev stack's http://"+devstack.DefaultGatewayAddr+"; default: not compared; --dev: its stack's)")
	tokens := addTokenFlags(fs, "sagactl-demo", true)
	dev := fs.Bool("dev", false, "start the embedded dev stack in this process (free ports, 10 min order deadline) and run on it;\nthe demo can then stall services and give the deadline path's order alone a short deadline,\nso every path, deadline included, is deterministic")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sagactl demo [--order ADDR ...]")
		fmt.Fprintln(stderr, "\nSeeds a catalog on a running suite, places orders that take every saga path, prints each")
		fmt.Fprintln(stderr, "order's step timeline and the invariant audit, and ends with one JSON line on stdout:")
		fmt.Fprintln(stderr, `  {"orders":N,"completed":C,"cancelled":X,"pending":P,"invariants":"ok"|"violated","violations":[...]}`)
		fmt.Fprintln(stderr, "Exit status 0 only when every order ended as its scenario expects, none is pending and the")
		fmt.Fprintln(stderr, "invariants hold; 1 otherwise; 2 when the demo could not run.")
		fmt.Fprintln(stderr, "Against a stack it cannot stop services of, the customer cancel races the saga and the")
		fmt.Fprintln(stderr, "deadline path is skipped (the table says so).")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	opts := demo.Options{OrderTimeout: *orderTimeout, AuditTimeout: *auditTimeout, GatewayURL: *gateway}
	if !*quiet {
		opts.Progress = stderr
	}
	if *dev {
		return demoOnDevStack(ctx, opts, stdout, stderr)
	}
	token, err := tokens.source(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl demo: %v\n", err)
		return exitError
	}
	conns, err := suite.Dial(*addrs, dialOptions(token)...)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl demo: %v\n", err)
		return exitError
	}
	defer conns.Close()
	return demoOn(ctx, conns.Clients, opts, stdout, stderr)
}

// demoOnDevStack starts the dev stack on free ports, runs the demo with the
// stack's Control, and stops the stack. The stack's order deadline is
// generous, so a busy machine never times an order out; the demo gives the
// deadline path's order a short one through the Control.
func demoOnDevStack(ctx context.Context, opts demo.Options, stdout, stderr io.Writer) int {
	free := "127.0.0.1:0"
	all := suite.Addrs{Order: free, Inventory: free, Payment: free, Shipping: free, Notification: free}
	st, err := devstack.Start(ctx, devstack.Options{
		GRPC: all, Ops: all, KafkaAddr: free, MySQLAddr: free, MongoAddr: free, GatewayAddr: free, OrderDeadline: 10 * time.Minute,
		LogLevel: config.LevelError, LogOutput: stderr,
	})
	if err != nil {
		fmt.Fprintf(stderr, "sagactl demo: dev stack: %v\n", err)
		return exitError
	}
	defer func() {
		if err := st.Stop(); err != nil {
			fmt.Fprintf(stderr, "sagactl demo: stop dev stack: %v\n", err)
		}
	}()
	if opts.Progress != nil {
		fmt.Fprintf(opts.Progress, "dev stack ready in %s (in-process Kafka, MySQL, MongoDB; notifications in memory)\n", st.ReadyIn.Round(time.Millisecond))
	}
	// The stack made its own key: the demo mints its token with it.
	conns, err := suite.Dial(st.GRPC, suite.WithToken(st.ToolToken("sagactl-demo")))
	if err != nil {
		fmt.Fprintf(stderr, "sagactl demo: %v\n", err)
		return exitError
	}
	defer conns.Close()
	opts.Control, opts.GatewayURL = st.Control(), st.GatewayURL
	return demoOn(ctx, conns.Clients, opts, stdout, stderr)
}

// demoOn runs the demo and prints its table and, last, the JSON line.
func demoOn(ctx context.Context, c suite.Clients, opts demo.Options, stdout, stderr io.Writer) int {
	res, err := demo.Run(ctx, c, opts)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl demo: %v\n", err)
		return exitError
	}
	if err := res.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "sagactl demo: %v\n", err)
		return exitError
	}
	if err := res.Summary.WriteJSONLine(stdout); err != nil {
		fmt.Fprintf(stderr, "sagactl demo: %v\n", err)
		return exitError
	}
	if !res.Summary.OK() {
		return exitProblems
	}
	return exitOK
}
