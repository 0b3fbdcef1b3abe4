// Command sagactl operates a running sagasuite: `sagactl audit` checks that
// finished sagas add up, `sagactl dlq` reads and redrives dead letters,
// `sagactl saga` shows one saga's timeline; dev, demo and bench run and load
// a suite; record captures Kafka records for event replay, replay runs a
// recording again, diff compares its output with the recording.
//
// Exit status: 0 success, 1 the command found problems (e.g. audit
// violations), 2 bad usage or the command could not run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses of every subcommand.
const (
	exitOK       = 0
	exitProblems = 1
	exitError    = 2
)

// command is one subcommand. run gets the arguments after its name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands lists the subcommands in help order.
var commands = []command{
	{name: "audit", summary: "check that the sagas of some customers add up (orders, stock, money, shipments, saga log)", run: runAudit},
	{name: "saga", summary: "the timeline of one saga: every event, its service, time since start, gap, compensations marked", run: runSaga},
	{name: "stuck", summary: "sagas without progress for --older-than (default 10s) and the step each waits on", run: runStuck},
	{name: "demo", summary: "place orders that take every saga path, show their timelines, audit, end with a JSON line", run: runDemo},
	{name: "bench", summary: "load generator: place orders at a rate or concurrency, report sagas/s and latency", run: runBench},
	{name: "dlq", summary: "dead letters of a consumer group: list, show, redrive (dry run unless --apply), drop", run: runDLQ},
	{name: "outbox", summary: "list a service's parked outbox rows, or un-park them so they are published (list|retry)", run: runOutbox},
	{name: "record", summary: "record saga topics' Kafka records (by time, offsets, order) to a capture file; --demo DIR: one golden per saga path", run: runRecord},
	{name: "replay", summary: "replay a recording into one service alone (--service) or the whole suite (--suite); write what it emitted and its end state", run: runReplay},
	{name: "diff", summary: "compare a replay's events (and end state) with a recording per order: missing, extra, changed fields, order", run: runDiff},
	{name: "rebuild", summary: "rebuild the notification read model from the saga topics into an empty keyspace, compare with the live one", run: runRebuild},
	{name: "keys", summary: "write a new token-signing key pair: jwks.json for the services, signing-key.jwk for sagactl token --key", run: runKeys},
	{name: "token", summary: "print a bearer token (customer, operator, catalog-admin, service) signed with the dev stack's key or --key", run: runToken},
	{name: "dev", summary: "run all five services in this process on in-process Kafka, MySQL and MongoDB (make run)", run: runDev},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitError
		}
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "sagactl: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitError
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sagactl <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\n`sagactl <command> -h` shows a command's flags.")
}

// parseFlags parses a subcommand's flags and refuses positional arguments.
// ok is false when the caller should return code (-h asked: exitOK; bad
// usage: exitError, the flag package having said why).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitError, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return exitError, false
	}
	return 0, true
}
