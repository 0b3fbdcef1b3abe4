// Package scenario runs scenario tests on the replay machinery: a directory
// per scenario holds what a service is given and what it must then emit and
// hold, and Run replays the given events into that service alone
// (replay.Service: a fresh store of its real type, a manual clock) and
// compares.
//
// A scenario directory:
//
//	scenario.json       {"service": "inventory", "description": "…", "seed": {…}, "when": […]}
//	given.jsonl         a capture file (tools/internal/capture, header line and all):
//	                    the records delivered, on the topics the service consumes
//	then.events.jsonl   a capture file: exactly the events the service must emit
//	then.state.json     the service's end state as replay.State writes it
//
// given.jsonl is a normal capture file so that anything that reads or cuts
// recordings (jq, capture.ReadFile, a golden under tools/testdata/recordings)
// works on it unchanged. Its header's seed is the catalog the service starts
// from; scenario.json's seed, when set, replaces it. Records the service
// does not consume are ignored (so a whole golden recording may be a given).
// Delivery order is replay.Plan's: per topic and key in offset order, merged
// by occurred_at — to make an event arrive earlier, give it an earlier
// occurred_at.
//
// The order service is driven from outside the bus too: its stimuli come from
// its own root events in given.jsonl (replay.Stimuli) — ORDER_CREATED is
// replayed as the CreateOrder call that made it (same request id, so the
// same order id), a customer's ORDER_CANCELLED as CancelOrder, a TIMEOUT
// ORDER_CANCELLED as the clock passing the deadline (the sweep cancels). Its
// other events in given.jsonl only tell the plan when they were handled. An
// order scenario expects the reactions stamped with the clock of the event
// that caused them (the recording's handling time, when given.jsonl holds
// the recorded reaction).
//
// "when" (explicit API calls) is not supported: a scenario that names it
// fails to load, saying to give the recorded root events instead.
package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/replay"
)

// File names inside a scenario directory.
const (
	SpecFile   = "scenario.json"
	GivenFile  = "given.jsonl"
	EventsFile = "then.events.jsonl"
	StateFile  = "then.state.json"
)

// UpdateEnv, set to 1, makes Run write then.* from the actual run instead of
// comparing (the test's -update flag does the same).
const UpdateEnv = "SAGASUITE_SCENARIO_UPDATE"

// Spec is scenario.json.
type Spec struct {
	// Service is the service the scenario runs (one of replay.Supported).
	Service string `json:"service"`
	// Description says what the scenario proves, for people.
	Description string `json:"description"`
	// Source says how given.jsonl was made (e.g. cut from a golden), for
	// people re-making it.
	Source string `json:"source,omitempty"`
	// Seed, when set, replaces given.jsonl's header seed.
	Seed *capture.Seed `json:"seed,omitempty"`
	// When would be API calls made after the given events; not supported
	// (Load refuses it): order's stimuli are its recorded root events.
	When []json.RawMessage `json:"when,omitempty"`
}

// Scenario is a loaded scenario directory.
type Scenario struct {
	Dir     string
	Spec    Spec
	Header  capture.Header
	Records []capture.Record
}

// Load reads and checks a scenario directory (its then.* files are read by
// Verify).
func Load(dir string) (*Scenario, error) {
	b, err := os.ReadFile(filepath.Join(dir, SpecFile))
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", dir, err)
	}
	var spec Spec
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields() // a misspelt key must not be silently ignored
	if err := dec.Decode(&spec); err != nil {
		return nil, fmt.Errorf("scenario %s: %s: %w", dir, SpecFile, err)
	}
	if !slices.Contains(replay.Supported, spec.Service) {
		return nil, fmt.Errorf("scenario %s: %s names service %q; scenarios run one of %v", dir, SpecFile, spec.Service, replay.Supported)
	}
	if len(spec.When) > 0 {
		return nil, fmt.Errorf("scenario %s: %s has \"when\" API calls, which are not supported: the order service's stimuli come from its recorded root events in %s (ORDER_CREATED → CreateOrder, a CUSTOMER_REQUESTED ORDER_CANCELLED → CancelOrder, a TIMEOUT one → the deadline passing)", dir, SpecFile, GivenFile)
	}
	h, recs, err := capture.ReadFile(filepath.Join(dir, GivenFile))
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", dir, err)
	}
	if spec.Seed != nil {
		h.Seed = spec.Seed
	}
	return &Scenario{Dir: dir, Spec: spec, Header: h, Records: recs}, nil
}

// Execute replays the scenario's given records into its service and returns
// what it emitted and its end state.
func (s *Scenario) Execute(ctx context.Context, logs io.Writer) (*replay.Result, error) {
	res, err := replay.Service(ctx, replay.Options{Service: s.Spec.Service, Header: s.Header, Records: s.Records,
		LogOutput: logs, ToolVersion: "scenario"})
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", s.Dir, err)
	}
	return res, nil
}

// Write stores res as the scenario's then.* files.
func Write(dir string, res *replay.Result) error {
	return res.WriteFiles(filepath.Join(dir, EventsFile), filepath.Join(dir, StateFile))
}

// Verify compares res with the then.* files in dir and returns an error
// listing every difference (nil when none).
func Verify(dir string, res *replay.Result) error {
	var problems []string
	_, want, err := capture.ReadFile(filepath.Join(dir, EventsFile))
	if err != nil {
		problems = append(problems, err.Error())
	} else {
		problems = append(problems, CompareEvents(want, res.Emitted)...)
	}
	wantState, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		problems = append(problems, err.Error())
	} else {
		problems = append(problems, CompareState(wantState, res.State)...)
	}
	if len(problems) == 0 {
		return nil
	}
	n := 0
	for _, p := range problems {
		if !strings.HasPrefix(p, " ") { // indented lines detail the one above
			n++
		}
	}
	return fmt.Errorf("scenario %s: %d difference(s) from %s and %s:\n  %s", dir, n, EventsFile, StateFile,
		strings.Join(problems, "\n  "))
}

// Options configure Run and RunAll.
type Options struct {
	// Update writes then.* from the actual run instead of comparing (also
	// when $SAGASUITE_SCENARIO_UPDATE is 1).
	Update bool
	// Timeout bounds one scenario (default 5 minutes: a bound for a hang,
	// not a speed target).
	Timeout time.Duration
}

// Run runs the scenario in dir as part of t and reports differences (or,
// updating, writes then.*).
func Run(t *testing.T, dir string, opts Options) {
	t.Helper()
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	began := time.Now()
	res, err := s.Execute(ctx, logs)
	if err != nil {
		t.Fatalf("%v\nservice logs:\n%s", err, logs.String())
	}
	t.Logf("%s (%s): %d records delivered, %d emitted, %s", dir, s.Spec.Service, res.Delivered, len(res.Emitted), time.Since(began).Round(time.Millisecond))
	if opts.Update || os.Getenv(UpdateEnv) == "1" {
		if err := Write(dir, res); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s and %s in %s: review them before committing", EventsFile, StateFile, dir)
		return
	}
	if err := Verify(dir, res); err != nil {
		t.Errorf("%v\n(%s: scenario %q)\nservice logs:\n%s", err, s.Spec.Service, s.Spec.Description, logs.String())
	}
}

// Dirs lists the scenario directories under root (each directory holding a
// scenario.json), sorted.
func Dirs(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == SpecFile {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	sort.Strings(dirs)
	return dirs, err
}

// RunAll runs every scenario under root as a subtest named by its path
// relative to root.
func RunAll(t *testing.T, root string, opts Options) {
	t.Helper()
	dirs, err := Dirs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		name, err := filepath.Rel(root, dir)
		if err != nil {
			name = dir
		}
		t.Run(filepath.ToSlash(name), func(t *testing.T) { Run(t, dir, opts) })
	}
}
