package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/replay"
)

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sagactl replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "", "the `service` to replay alone: "+strings.Join(replay.Supported, ", "))
	out := fs.String("o", "", "write the records the service emitted to this `file` (capture format; .gz compresses; default stdout)")
	state := fs.String("state", "", "write the service's end state (JSON, read through its gRPC API) to this `file`")
	timeout := fs.Duration("delivery-timeout", 2*time.Minute, "give up when the service has not processed one record within this `duration`")
	verbose := fs.Bool("v", false, "show the replayed service's logs (warnings and errors) on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sagactl replay --service NAME [-o EMITTED.jsonl] [--state STATE.json] REC.jsonl[.gz]")
		fmt.Fprintln(stderr, "\nReplays a recording (sagactl record) into ONE service running alone in this process on fresh")
		fmt.Fprintln(stderr, "in-process stores of its real type: the records on the topics it consumes, one at a time in the")
		fmt.Fprintln(stderr, "order it handled them, its clock set from the recorded events. Writes what it emitted and its end")
		fmt.Fprintln(stderr, "state; the same recording gives byte-identical files every time. A summary goes to stderr.")
		fmt.Fprintln(stderr, "\nexample:")
		fmt.Fprintln(stderr, "  sagactl replay --service payment -o payment.emitted.jsonl --state payment.state.json demo.jsonl")
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
	if len(paths) != 1 || *service == "" {
		fmt.Fprintln(stderr, "sagactl replay: give --service and exactly one recording")
		fs.Usage()
		return exitError
	}
	header, recs, err := capture.ReadFile(paths[0])
	if err != nil {
		fmt.Fprintf(stderr, "sagactl replay: %v\n", err)
		return exitError
	}
	opts := replay.Options{Service: *service, Header: header, Records: recs, DeliveryTimeout: *timeout, ToolVersion: toolVersion()}
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
