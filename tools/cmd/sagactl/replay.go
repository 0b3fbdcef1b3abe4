package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/replay"
	"github.com/sagasuite/sagasuite/tools/internal/replay/wholesuite"
)

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sagactl replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "", "the `service` to replay alone: "+strings.Join(replay.Supported, ", "))
	wholeSuite := fs.Bool("suite", false, "replay the recording's root stimuli into the whole suite (instead of --service)")
	out := fs.String("o", "", "write the records emitted to this `file` (capture format; .gz compresses; default stdout)")
	state := fs.String("state", "", "write the end state (JSON, read through the services' gRPC APIs) to this `file`")
	timeout := fs.Duration("delivery-timeout", 2*time.Minute, "give up when one record (--service) or one saga (--suite) is not processed within this `duration`")
	kafka := fs.String("kafka", "", "replay against this external Kafka (`host:port`, comma-separated) instead of an in-process one")
	mysqlDSN := fs.String("mysql", "", "replay against this external MySQL/MariaDB (go-sql-driver `DSN` of a user that may create and drop databases)")
	mongoURI := fs.String("mongo", "", "replay against this external MongoDB/FerretDB (`URI`)")
	cassandra := fs.String("cassandra", "", "replay against this external Cassandra (`hosts`, comma-separated) instead of keeping notifications in memory")
	namespace := fs.String("namespace", "", "`name` of the replay's databases, keyspace and topic prefix on the external servers (default replay_<random>_; never "+devstack.Namespace+")")
	keep := fs.Bool("keep", false, "leave the namespace on the external servers after the replay (default: drop its databases, keyspace, topics and groups)")
	verbose := fs.Bool("v", false, "show the replayed services' logs (warnings and errors) and, with --suite, each stimulus on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sagactl replay --service NAME [-o EMITTED.jsonl] [--state STATE.json] REC.jsonl[.gz]")
		fmt.Fprintln(stderr, "       sagactl replay --suite [-o OUT.jsonl] [--state STATE.json] REC.jsonl[.gz]")
		fmt.Fprintln(stderr, "\nWith --service: replays a recording (sagactl record) into ONE service running alone in this")
		fmt.Fprintln(stderr, "process on fresh in-process stores of its real type: the records on the topics it consumes, one at")
		fmt.Fprintln(stderr, "a time in the order it handled them, its clock set from the recorded events (order: also its API")
		fmt.Fprintln(stderr, "calls, CreateOrder and CancelOrder, rebuilt from its recorded events, and its deadline cancels).")
		fmt.Fprintln(stderr, "Writes what it emitted and its end state.")
		fmt.Fprintln(stderr, "\nWith --suite: replays only the root stimuli (CreateOrder, customer CancelOrder, deadline clock")
		fmt.Fprintln(stderr, "moves) into all five services in this process, saga by saga; writes every record of the")
		fmt.Fprintln(stderr, "recording's orders the suite emitted (normalized) and the end state across the services.")
		fmt.Fprintln(stderr, "\nThe same recording gives byte-identical files every time. A summary goes to stderr.")
		fmt.Fprintln(stderr, "\nAgainst a real stack: --kafka/--mysql/--mongo/--cassandra (as sagactl dev's) replace the in-process")
		fmt.Fprintln(stderr, "servers, any subset. Each replay gets fresh stores and topics there: databases and keyspace named")
		fmt.Fprintln(stderr, "<namespace>order … <namespace>notification, topics and consumer groups prefixed <namespace>; all")
		fmt.Fprintln(stderr, "dropped afterwards unless --keep.")
		fmt.Fprintln(stderr, "\nexamples:")
		fmt.Fprintln(stderr, "  sagactl replay --service payment -o payment.emitted.jsonl --state payment.state.json demo.jsonl")
		fmt.Fprintln(stderr, "  sagactl replay --suite -o suite.jsonl --state suite.state.json demo.jsonl")
		fmt.Fprintln(stderr, "  sagactl replay --service inventory --kafka 127.0.0.1:19092 \\")
		fmt.Fprintln(stderr, "      --mysql 'sagasuite:sagasuite@tcp(127.0.0.1:13306)/' demo.jsonl   # the local real stack (make infra-up)")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	// Flags may come before or after the recording's path.
	var paths []string
	for {
		if code, ok := parseFlagsOnly(fs, args); !ok {
			return code
		}
		if fs.NArg() == 0 {
			break
		}
		paths, args = append(paths, fs.Arg(0)), fs.Args()[1:]
	}
	if len(paths) != 1 || (*service == "") == !*wholeSuite {
		fmt.Fprintln(stderr, "sagactl replay: give --service or --suite (not both) and exactly one recording")
		fs.Usage()
		return exitError
	}
	header, recs, err := capture.ReadFile(paths[0])
	if err != nil {
		fmt.Fprintf(stderr, "sagactl replay: %v\n", err)
		return exitError
	}
	servers := replay.Servers{Kafka: splitList(*kafka), MySQLDSN: *mysqlDSN, MongoURI: *mongoURI, Cassandra: splitList(*cassandra),
		Namespace: *namespace, Keep: *keep}
	if servers.External() {
		if servers.Namespace == "" {
			if servers.Namespace, err = replay.NewNamespace(); err != nil {
				fmt.Fprintf(stderr, "sagactl replay: %v\n", err)
				return exitError
			}
		}
		if err := devstack.CheckNamespace(servers.Namespace); err != nil {
			fmt.Fprintf(stderr, "sagactl replay: --namespace: %v\n", err)
			return exitError
		}
		what := "dropped afterwards"
		if servers.Keep {
			what = "kept (--keep)"
		}
		fmt.Fprintf(stderr, "sagactl replay: on the external servers in namespace %s (%s)\n", servers.Namespace, what)
	} else if *namespace != "" || *keep {
		fmt.Fprintln(stderr, "sagactl replay: --namespace and --keep need an external server (--kafka, --mysql, --mongo or --cassandra)")
		return exitError
	}
	if *wholeSuite {
		opts := wholesuite.Options{Header: header, Records: recs, SagaTimeout: *timeout, Servers: servers}
		if *verbose {
			opts.LogOutput, opts.LogLevel, opts.Progress = stderr, config.LevelWarn, stderr
		}
		return replaySuite(ctx, opts, *out, *state, stdout, stderr)
	}
	opts := replay.Options{Service: *service, Header: header, Records: recs, DeliveryTimeout: *timeout, ToolVersion: toolVersion(),
		Servers: servers}
	if *verbose {
		opts.LogOutput, opts.LogLevel = stderr, config.LevelWarn
	}
	res, err := replay.Service(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl replay: %v\n", err)
		return exitError
	}
	if *out != "" {
		err = res.WriteFiles(*out, *state)
	} else {
		err = res.WriteFiles("", *state)
		if err == nil {
			err = writeRecords(stdout, res)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "sagactl replay: %v\n", err)
		return exitError
	}
	rate, speed := 0.0, 0.0
	if s := res.Elapsed.Seconds(); s > 0 {
		rate, speed = float64(res.Delivered)/s, res.Recorded.Seconds()/s
	}
	fmt.Fprintf(stderr, "sagactl replay: %s: %d records delivered in %s (%.0f records/s; the recording spans %s: %.1f× real time), %d emitted\n",
		res.Service, res.Delivered, res.Elapsed.Round(time.Millisecond), rate, res.Recorded.Round(time.Millisecond), speed, len(res.Emitted))
	return exitOK
}

// replaySuite runs the whole-suite replay and writes its records to out
// (stdout when empty) and its end state to statePath (skipped when empty).
func replaySuite(ctx context.Context, opts wholesuite.Options, out, statePath string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "sagactl replay: %v\n", err)
		return exitError
	}
	opts.Header.ToolVersion = toolVersion()
	res, err := wholesuite.Replay(ctx, opts)
	if err != nil {
		return fail(err)
	}
	// WriteResult's files are the format; they are moved where asked.
	dir, err := os.MkdirTemp("", "sagactl-replay-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	if err := wholesuite.WriteResult(dir, opts.Header, res); err != nil {
		return fail(err)
	}
	events, state := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "state.json")
	switch {
	case out == "":
		b, err := os.ReadFile(events)
		if err == nil {
			_, err = stdout.Write(b)
		}
		if err != nil {
			return fail(err)
		}
	case strings.HasSuffix(out, ".gz"):
		h, recs, err := capture.ReadFile(events)
		if err == nil {
			err = capture.WriteFile(out, h, recs)
		}
		if err != nil {
			return fail(err)
		}
	default:
		if err := copyFile(events, out); err != nil {
			return fail(err)
		}
	}
	if statePath != "" {
		if err := copyFile(state, statePath); err != nil {
			return fail(err)
		}
	}
	speed := 0.0
	if s := res.SagasTook.Seconds(); s > 0 {
		speed = res.RecordedSpan.Seconds() / s
	}
	fmt.Fprintf(stderr, "sagactl replay: whole suite: %d orders, %d records emitted; sagas replayed in %s, %s in all (the recording spans %s: %.1f× real time)\n",
		len(res.Orders), len(res.Records), res.SagasTook.Round(time.Millisecond), res.Took.Round(time.Millisecond),
		res.RecordedSpan.Round(time.Millisecond), speed)
	return exitOK
}

// copyFile copies src to dst (created or truncated).
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// writeRecords writes the emitted records as a recording to w.
func writeRecords(w io.Writer, res *replay.Result) error {
	cw, err := capture.NewWriter(w, res.Header)
	if err != nil {
		return err
	}
	for _, r := range res.Emitted {
		if err := cw.Write(r); err != nil {
			return err
		}
	}
	return cw.Close()
}

// parseFlagsOnly parses flags up to the first positional argument; ok is
// false when the caller should return code (see parseFlags).
func parseFlagsOnly(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK, false
		}
		return exitError, false
	}
	return 0, true
}
