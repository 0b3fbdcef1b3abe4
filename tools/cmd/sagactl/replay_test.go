package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/capture"
)

// The stored recording of tools/internal/replay (four sagas).
const replayRecording = "../../internal/replay/testdata/four-sagas.jsonl"

// sagactl replay twice on the same recording writes byte-identical files;
// the emitted records are a readable recording holding inventory's events.
func TestReplayTwiceGivesIdenticalFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	dir := t.TempDir()
	var emitted, states [2][]byte
	for i := range 2 {
		out, state := filepath.Join(dir, "emitted"+string(rune('a'+i))+".jsonl"), filepath.Join(dir, "state"+string(rune('a'+i))+".json")
		var stdout, stderr bytes.Buffer
		if code := run(ctx, []string{"replay", "--service", "inventory", "-o", out, replayRecording, "--state", state}, &stdout, &stderr); code != exitOK {
			t.Fatalf("replay %d: exit %d\n%s", i+1, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "records delivered") || !strings.Contains(stderr.String(), "× real time") {
			t.Errorf("no summary on stderr: %q", stderr.String())
		}
		var err error
		if emitted[i], err = os.ReadFile(out); err != nil {
			t.Fatal(err)
		}
		if states[i], err = os.ReadFile(state); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(emitted[0], emitted[1]) {
		t.Errorf("emitted records differ between two replays:\n%s\n---\n%s", emitted[0], emitted[1])
	}
	if !bytes.Equal(states[0], states[1]) {
		t.Errorf("end states differ between two replays:\n%s\n---\n%s", states[0], states[1])
	}
	_, recs, err := capture.ReadFile(filepath.Join(dir, "emitteda.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatal("inventory emitted nothing")
	}
	for _, r := range recs {
		if env, err := r.Event(); err != nil || env.GetProducer() != "inventory" {
			t.Errorf("emitted record %+v: producer %q, %v", r, env.GetProducer(), err)
		}
	}
	if !bytes.Contains(states[0], []byte(`"DEV-MUG"`)) {
		t.Errorf("state lacks the seeded products:\n%s", states[0])
	}

	// Without -o the records go to stdout, the same bytes.
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"replay", "--service", "inventory", replayRecording}, &stdout, &stderr); code != exitOK {
		t.Fatalf("replay to stdout: exit %d\n%s", code, stderr.String())
	}
	if !bytes.Equal(stdout.Bytes(), emitted[0]) {
		t.Errorf("stdout differs from the -o file:\n%s\n---\n%s", stdout.Bytes(), emitted[0])
	}
}

// sagactl replay --suite replays a golden recording into the whole suite:
// the output is a recording holding the order's recorded events (same ids),
// the state a JSON object naming the order, stdout the same bytes as -o,
// and a second run the same bytes.
func TestReplaySuite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	const golden = "../../testdata/recordings/shipment-failed.jsonl"
	_, recorded, err := capture.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var outs [2][]byte
	var state []byte
	for i := range 2 {
		out := filepath.Join(dir, fmt.Sprintf("suite-%d.jsonl", i))
		args := []string{"replay", "--suite", golden, "-o", out}
		if i == 0 {
			args = append(args, "--state", filepath.Join(dir, "state.json"))
		}
		var stdout, stderr bytes.Buffer
		if code := run(ctx, args, &stdout, &stderr); code != exitOK {
			t.Fatalf("replay --suite: exit %d\n%s", code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "whole suite: 1 orders") || !strings.Contains(stderr.String(), "× real time") {
			t.Errorf("no summary on stderr: %q", stderr.String())
		}
		if outs[i], err = os.ReadFile(out); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Errorf("two suite replays wrote different records:\n%s\n---\n%s", outs[0], outs[1])
	}
	if state, err = os.ReadFile(filepath.Join(dir, "state.json")); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Orders map[string]json.RawMessage `json:"orders"`
	}
	if err := json.Unmarshal(state, &st); err != nil || len(st.Orders) != 1 {
		t.Errorf("state: %v, %d orders:\n%s", err, len(st.Orders), state)
	}
	_, replayed, err := capture.ReadFile(filepath.Join(dir, "suite-0.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range replayed {
		if env, err := r.Event(); err == nil {
			got[env.GetEventId()] = true
		}
	}
	for _, r := range recorded {
		env, err := r.Event()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := st.Orders[env.GetOrderId()]; !ok {
			t.Errorf("state lacks order %s", env.GetOrderId())
		}
		if !got[env.GetEventId()] {
			t.Errorf("the suite replay lacks recorded event %s (%s)", env.GetEventId(), env.GetType())
		}
	}

	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"replay", "--suite", golden}, &stdout, &stderr); code != exitOK {
		t.Fatalf("replay --suite to stdout: exit %d\n%s", code, stderr.String())
	}
	if !bytes.Equal(stdout.Bytes(), outs[0]) {
		t.Errorf("stdout differs from the -o file:\n%s\n---\n%s", stdout.Bytes(), outs[0])
	}
}

func TestReplayBadUsage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", replayRecording}, "give --service or --suite"},
		{[]string{"replay", "--suite", "--service", "order", replayRecording}, "not both"},
		{[]string{"replay", "--service", "inventory"}, "exactly one recording"},
		{[]string{"replay", "--service", "gateway", replayRecording}, `cannot replay service "gateway" alone`},
		{[]string{"replay", "--service", "inventory", filepath.Join(t.TempDir(), "missing.jsonl")}, "no such file"},
		{[]string{"replay", "--service", "inventory", "--keep", replayRecording}, "need an external server"},
		{[]string{"replay", "--service", "inventory", "--mysql", "x@tcp(127.0.0.1:1)/", "--namespace", "bad-name", replayRecording}, "letters, digits and underscores"},
		{[]string{"replay", "--service", "inventory", "--mysql", "x@tcp(127.0.0.1:1)/", "--namespace", "sagasuite_dev_", replayRecording}, "the dev stack's"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, tc.args, &stdout, &stderr); code != exitError || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, stderr.String(), exitError, tc.want)
		}
	}
}
