package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/replaydiff"
)

func runDiff(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sagactl diff", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateWant := fs.String("state-want", "", "the recorded end state, a JSON `file`, compared with --state-got")
	stateGot := fs.String("state-got", "", "the replay's end state, a JSON `file`")
	ignore := fs.String("ignore", "", "comma-separated field `paths` whose differences are not reported (e.g. occurred_at,*.deadline)")
	topics := fs.String("topics", "", "comma-separated `topics` to compare, on both sides (e.g. payments.v1 for a replay of the payment service alone); default all")
	update := fs.Bool("update", false, "rewrite WANT with GOT's records (and --state-want with --state-got) instead of failing: regenerate goldens")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sagactl diff [--topics T,…] [--ignore PATH,…] [--state-want FILE --state-got FILE] [--update] WANT GOT")
		fmt.Fprintln(stderr, "\nCompares a replay's captured events (GOT) with a recording (WANT), both capture files (.jsonl or")
		fmt.Fprintln(stderr, ".jsonl.gz): events matched by their derived event id, then field by field on the decoded protobuf;")
		fmt.Fprintln(stderr, "order compared only per topic and key and along causation chains, never across topics; partition,")
		fmt.Fprintln(stderr, "offset, timestamp and headers ignored (but the type and id headers must agree with the envelope).")
		fmt.Fprintln(stderr, "The report groups missing, extra and changed events by order id, each change with its field path.")
		fmt.Fprintln(stderr, "\nExit status: 0 no differences (or --update done), 1 differences (report on stdout), 2 bad usage or a")
		fmt.Fprintln(stderr, "file that cannot be read.")
		fmt.Fprintln(stderr, "\nexample:")
		fmt.Fprintln(stderr, "  sagactl diff --ignore occurred_at testdata/replay/success.jsonl /tmp/success.got.jsonl")
		fmt.Fprintln(stderr, "  sagactl diff --topics payments.v1 demo.jsonl payment.emitted.jsonl")
		fmt.Fprintln(stderr, "  sagactl diff --state-want success.state.json --state-got /tmp/state.json --update success.jsonl /tmp/got.jsonl")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	paths, code, ok := parseWithPositionals(fs, args)
	if !ok {
		return code
	}
	if len(paths) != 2 {
		fmt.Fprintf(stderr, "sagactl diff: give two capture files, WANT and GOT (got %d arguments)\n", len(paths))
		fs.Usage()
		return exitError
	}
	if (*stateWant == "") != (*stateGot == "") {
		fmt.Fprintln(stderr, "sagactl diff: --state-want and --state-got go together")
		return exitError
	}
	if *update && *topics != "" {
		// WANT would lose its other topics' records.
		fmt.Fprintln(stderr, "sagactl diff: --update rewrites the whole recording; it does not go with --topics")
		return exitError
	}
	var opts replaydiff.Options
	for _, p := range strings.Split(*ignore, ",") {
		if p = strings.TrimSpace(p); p != "" {
			opts.Ignore = append(opts.Ignore, p)
		}
	}

	wantPath, gotPath := paths[0], paths[1]
	wantHeader, wantRecs, err := capture.ReadFile(wantPath)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl diff: want: %v\n", err)
		return exitError
	}
	gotHeader, gotRecs, err := capture.ReadFile(gotPath)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl diff: got: %v\n", err)
		return exitError
	}
	var wantState, gotState []byte
	if *stateWant != "" {
		if wantState, err = os.ReadFile(*stateWant); err != nil {
			fmt.Fprintf(stderr, "sagactl diff: --state-want: %v\n", err)
			return exitError
		}
		if gotState, err = os.ReadFile(*stateGot); err != nil {
			fmt.Fprintf(stderr, "sagactl diff: --state-got: %v\n", err)
			return exitError
		}
	}

	if *topics != "" {
		keep := map[string]bool{}
		for _, t := range strings.Split(*topics, ",") {
			keep[strings.TrimSpace(t)] = true
		}
		wantRecs, gotRecs = onTopics(wantRecs, keep), onTopics(gotRecs, keep)
	}
	rep := replaydiff.Compare(wantRecs, gotRecs, opts)
	var state replaydiff.StateDiff
	if wantState != nil {
		if state, err = replaydiff.CompareState(wantState, gotState, opts); err != nil {
			fmt.Fprintf(stderr, "sagactl diff: %v\n", err)
			return exitError
		}
	}
	fmt.Fprint(stdout, rep)
	if wantState != nil {
		fmt.Fprint(stdout, state)
	}
	same := rep.Empty() && state.Empty()

	if *update {
		if same {
			fmt.Fprintf(stdout, "nothing to update: %s is current\n", wantPath)
			return exitOK
		}
		// The recording keeps its identity (source, ranges, seed); only when
		// and by what it was made follow the new output.
		h := wantHeader
		h.ToolVersion, h.CapturedAt = gotHeader.ToolVersion, gotHeader.CapturedAt
		if h.CapturedAt.IsZero() {
			h.CapturedAt = time.Now().UTC()
		}
		h.Format, h.Version = capture.Format, capture.Version
		if err := replaceFile(wantPath, func(tmp string) error { return capture.WriteFile(tmp, h, gotRecs) }); err != nil {
			fmt.Fprintf(stderr, "sagactl diff: update %s: %v\n", wantPath, err)
			return exitError
		}
		fmt.Fprintf(stdout, "updated %s\n", wantPath)
		if wantState != nil && !state.Empty() {
			if err := replaceFile(*stateWant, func(tmp string) error { return os.WriteFile(tmp, gotState, 0o644) }); err != nil {
				fmt.Fprintf(stderr, "sagactl diff: update %s: %v\n", *stateWant, err)
				return exitError
			}
			fmt.Fprintf(stdout, "updated %s\n", *stateWant)
		}
		return exitOK
	}
	if !same {
		return exitProblems
	}
	return exitOK
}

// onTopics keeps the records on the given topics.
func onTopics(recs []capture.Record, keep map[string]bool) []capture.Record {
	var out []capture.Record
	for _, r := range recs {
		if keep[r.Topic] {
			out = append(out, r)
		}
	}
	return out
}

// parseWithPositionals parses flags that may come before, between or after
// the positional arguments (the flag package stops at the first of them).
func parseWithPositionals(fs *flag.FlagSet, args []string) (positional []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitError, false
		}
		if fs.NArg() == 0 {
			return positional, 0, true
		}
		if consumed := len(args) - fs.NArg(); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, fs.Args()...), 0, true // after "--" nothing is a flag
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// replaceFile writes path through a temporary file in its directory and a
// rename, so a failed write leaves the old golden intact. The temporary name
// keeps path's extension (a .gz stays gzipped).
func replaceFile(path string, write func(tmp string) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".update-*")
	if err != nil {
		return err
	}
	f.Close()
	tmp := f.Name() + filepath.Ext(path)
	os.Remove(f.Name())
	if err := write(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if info, err := os.Stat(path); err == nil {
		_ = os.Chmod(tmp, info.Mode().Perm())
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
