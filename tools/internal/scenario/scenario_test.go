package scenario_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/replay"
	"github.com/sagasuite/sagasuite/tools/internal/scenario"
)

var update = flag.Bool("update", false, "write then.* of every scenario run from the actual run (review them before committing)")

// servicesDir holds services/<name>/testdata/scenarios (services cannot
// import tools, so the runner's test walks them from here).
const servicesDir = "../../../services"

// Every scenario of every event-consuming service passes. Run one service's
// with `go test ./tools/internal/scenario -run 'TestScenarios/payment'`.
func TestScenarios(t *testing.T) {
	total := 0
	for _, service := range replay.Supported {
		root := filepath.Join(servicesDir, service, "testdata", "scenarios")
		dirs, err := scenario.Dirs(root)
		if err != nil {
			t.Fatal(err)
		}
		total += len(dirs)
		t.Run(service, func(t *testing.T) {
			if len(dirs) == 0 {
				t.Fatalf("no scenario under %s: every event-consuming service keeps its compensation paths there", root)
			}
			scenario.RunAll(t, root, scenario.Options{Update: *update})
		})
	}
	t.Logf("%d scenarios", total)
}

// copyScenario copies a scenario directory so a test can change it.
func copyScenario(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	for _, name := range []string{scenario.SpecFile, scenario.GivenFile, scenario.EventsFile, scenario.StateFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// The runner can fail: a scenario whose expected refund amount, expected
// state and expected event list were changed fails, naming the event type,
// id and field path, the state path, and the missing and extra events.
func TestPlantedChangesFailReadably(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a bound for a hang
	defer cancel()
	orig := filepath.Join(servicesDir, "payment", "testdata", "scenarios", "refund-on-shipment-failed")
	s, err := scenario.Load(orig)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Execute(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := scenario.Verify(orig, res); err != nil {
		t.Fatalf("the unchanged scenario must pass: %v", err)
	}

	// Plant: the refund's amount and reason, one extra expected event, and
	// the payment's status in the state.
	dir := copyScenario(t, orig)
	h, recs, err := capture.ReadFile(filepath.Join(dir, scenario.EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	var refundID string
	for i, r := range recs {
		env, err := r.Event()
		if err != nil {
			t.Fatal(err)
		}
		if refund := env.GetPaymentRefunded(); refund != nil {
			refundID = env.GetEventId()
			refund.Amount.AmountMinor++
			if recs[i].Envelope, err = capture.MarshalEnvelope(env); err != nil {
				t.Fatal(err)
			}
		}
	}
	if refundID == "" {
		t.Fatalf("the scenario expects no PAYMENT_REFUNDED: %+v", recs)
	}
	// The first expected event is replaced by a copy with another id: the
	// real one becomes extra, the copy missing.
	ghost := recs[0]
	env, _ := ghost.Event()
	extraID := env.GetEventId()
	env.EventId = "00000000-0000-7000-8000-00000000beef"
	if ghost.Envelope, err = capture.MarshalEnvelope(env); err != nil {
		t.Fatal(err)
	}
	recs = append(recs[1:], ghost)
	if err := capture.WriteFile(filepath.Join(dir, scenario.EventsFile), h, recs); err != nil {
		t.Fatal(err)
	}
	state, err := os.ReadFile(filepath.Join(dir, scenario.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Service  string                    `json:"service"`
		Payments map[string]map[string]any `json:"payments"`
	}
	if err := json.Unmarshal(state, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Payments) != 1 {
		t.Fatalf("the scenario's state holds %d payments, want 1:\n%s", len(st.Payments), state)
	}
	for _, p := range st.Payments {
		p["status"] = "PAYMENT_STATUS_PLANTED"
	}
	if state, err = json.MarshalIndent(st, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, scenario.StateFile), state, 0o644); err != nil {
		t.Fatal(err)
	}

	err = scenario.Verify(dir, res)
	if err == nil {
		t.Fatal("the planted changes passed")
	}
	msg := err.Error()
	t.Logf("the failure reads:\n%s", msg)
	for _, want := range []string{
		"changed PAYMENT_REFUNDED " + refundID,
		"$.payment_refunded.amount.amount_minor: expected ",
		"missing " + strings.TrimPrefix(mustType(t, ghost), "EVENT_TYPE_") + " 00000000-0000-7000-8000-00000000beef",
		"extra " + strings.TrimPrefix(mustType(t, ghost), "EVENT_TYPE_") + " " + extraID + " of order ",
		"state $.payments.",
		".status: expected \"PAYMENT_STATUS_PLANTED\", got \"PAYMENT_STATUS_REFUNDED\"",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the failure does not say %q", want)
		}
	}
}

func mustType(t *testing.T, r capture.Record) string {
	t.Helper()
	env, err := r.Event()
	if err != nil {
		t.Fatal(err)
	}
	return env.GetType().String()
}

func TestJSONDiffPaths(t *testing.T) {
	got := scenario.JSONDiff([]byte(`{"a":{"b":[1,2],"c":"x"},"big":12345678901234567890}`),
		[]byte(`{"a":{"b":[1],"c":"y","d":true},"big":12345678901234567891}`))
	want := []string{
		`$.a.b[1]: expected 2, absent`,
		`$.a.c: expected "x", got "y"`,
		`$.a.d: not expected, got true`,
		`$.big: expected 12345678901234567890, got 12345678901234567891`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := scenario.JSONDiff([]byte(`{`), []byte(`{}`)); len(d) != 1 || !strings.Contains(d[0], "invalid JSON") {
		t.Fatalf("invalid JSON: %v", d)
	}
}

func TestLoadRejectsBadScenarios(t *testing.T) {
	for name, spec := range map[string]string{
		"unknown service": `{"service":"billing"}`,
		"misspelt key":    `{"service":"payment","descripton":"x"}`,
		"when":            `{"service":"payment","when":[{"call":"CreateOrder"}]}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, scenario.SpecFile), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := scenario.Load(dir); err == nil {
			t.Errorf("%s: loaded %s", name, spec)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
