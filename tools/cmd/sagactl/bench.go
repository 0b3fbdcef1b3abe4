package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/bench"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sagactl bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrs := addrFlags(fs)
	rate := fs.Float64("rate", 0, "open loop: place orders at this `rate` per second, whatever the stack does")
	concurrency := fs.Int("concurrency", 0, "closed loop: `N` callers, each placing its next order when the last one ended (default 8 when no --rate)")
	duration := fs.Duration("duration", 0, "place orders for this `long` (default 10s when no --orders), then wait for those in flight")
	orders := fs.Int("orders", 0, "place this many `orders` (with --duration: whichever comes first)")
	mixFlag := fs.String("mix", "success=100", "order kinds in `percent`: success, declined (tok_decline), undeliverable (country AQ), outofstock (a SKU without stock)")
	skus := fs.Int("skus", 8, "SKUs to spread the orders over (each seeded with 1,000,000 units)")
	customers := fs.Int("customers", 16, "customers to spread the orders over")
	timeout := fs.Duration("timeout", 2*time.Minute, "bound on one order from CreateOrder to its end; later it counts as unfinished")
	poll := fs.Duration("poll", 0, "follow orders by polling GetOrder at this `interval` instead of WatchOrder")
	ops := devstack.DefaultOps
	for _, name := range suite.Services {
		fs.Func(name+"-ops", fmt.Sprintf("%s ops HTTP `address`, whose /metrics counters are compared (default %s)", name, devstack.DefaultOps.Of(name)), addrSetter(&ops, name))
	}
	servers := fs.String("servers", bench.DefaultServers, "local servers to charge CPU to, `name=host:port,…` (kafka, mariadb, postgres, ferretdb, cassandra; found by the port they listen on, else by command line; none: no servers)")
	statusDSN := fs.String("mysql-status-dsn", testenvDefaultMySQLDSN, "read MariaDB's SHOW GLOBAL STATUS counters through this go-sql-driver `DSN` before and after (empty: skip)")
	noInstruments := fs.Bool("no-instruments", false, "measure latency only: no CPU per process (/proc), no counters")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of a table")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	tokens := addTokenFlags(fs, "sagactl-bench", true)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sagactl bench [--rate N | --concurrency N] [--duration 30s | --orders N] [--mix success=90,declined=10] [--json] [--order ADDR ...]")
		fmt.Fprintln(stderr, "\nPlaces orders against a running suite and follows each from CreateOrder to COMPLETED or CANCELLED;")
		fmt.Fprintln(stderr, "reports sagas/s, latency percentiles, outcomes and errors. Seeds its own SKUs and customers.")
		fmt.Fprintln(stderr, "Also reports, per completed saga, the CPU of every local process it finds (the services by their")
		fmt.Fprintln(stderr, "gRPC ports, the servers of --servers; from /proc) and the counters of MariaDB and the services' /metrics.")
		fmt.Fprintln(stderr, "Exit status 1 when an order failed to be placed, did not end, or ended otherwise than its kind.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	mix, err := bench.ParseMix(*mixFlag)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl bench: %v\n", err)
		return exitError
	}
	cfg := bench.Config{Rate: *rate, Concurrency: *concurrency, Orders: *orders, Duration: *duration, Mix: mix,
		SKUs: *skus, Customers: *customers, Timeout: *timeout, Poll: *poll}
	if !*noInstruments {
		targets, err := bench.ParseServers(*servers)
		if err != nil {
			fmt.Fprintf(stderr, "sagactl bench: %v\n", err)
			return exitError
		}
		cfg.Probe = bench.SuiteProbe(*addrs, ops, targets, *statusDSN)
	}
	if !*quiet {
		cfg.Progress = stderr
	}

	token, err := tokens.source(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl bench: %v\n", err)
		return exitError
	}
	conns, err := suite.Dial(*addrs, dialOptions(token)...)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl bench: %v\n", err)
		return exitError
	}
	defer conns.Close()
	res, err := bench.Run(ctx, conns.Clients, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl bench: %v\n", err)
		return exitError
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = res.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sagactl bench: %v\n", err)
		return exitError
	}
	if len(res.Errors) > 0 || res.Unfinished > 0 || res.Unexpected > 0 {
		return exitProblems
	}
	return exitOK
}

// testenvDefaultMySQLDSN is the local real stack's admin account
// (libs/testenv), written out so sagactl does not link the test helpers.
const testenvDefaultMySQLDSN = "sagasuite:sagasuite@tcp(127.0.0.1:13306)/"
