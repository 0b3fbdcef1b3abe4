package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/capture"
)

// The planted change: the payment service's charge handler asks the gateway
// for one minor unit more than the order's reserved total. The exact text
// is checked to occur once, so a refactored handler fails this test loudly
// instead of silently patching nothing.
const (
	plantedFile     = "../../../services/payment/internal/app/charge_payment.go"
	plantedOriginal = "Amount: cmd.Amount, PaymentToken: cmd.PaymentToken,"
	plantedChanged  = "Amount: payment.Money{AmountMinor: cmd.Amount.AmountMinor + 1, Currency: cmd.Amount.Currency}, PaymentToken: cmd.PaymentToken,"
	// A golden whose payment charge runs the changed line.
	plantedGolden = "../../testdata/recordings/success.jsonl"
)

// TestPlantedHandlerChangeFailsTheDiff proves the golden replay catches a
// real handler change: sagactl is built twice with go build — as it is, and
// with the charge handler changed through `go build -overlay` (the tree is
// never touched) — and each binary replays the success golden through the
// payment service alone, then diffs its payments.v1 events against the
// golden. Unchanged: exit 0. Changed: exit 1, and the report names the
// order, PAYMENT_PROCESSED, its event id and the amount path with old → new.
func TestPlantedHandlerChangeFailsTheDiff(t *testing.T) {
	// A bound for a hang (two builds on a busy machine), not a speed target.
	ctx, cancel := context.WithTimeout(t.Context(), 9*time.Minute)
	defer cancel()
	dir := t.TempDir()

	source, err := filepath.Abs(plantedFile)
	if err != nil {
		t.Fatal(err)
	}
	original, err := os.ReadFile(source)
	if err != nil {
		t.Fatalf("read the handler to change: %v", err)
	}
	if n := strings.Count(string(original), plantedOriginal); n != 1 {
		t.Fatalf("%s holds %q %d times, want exactly once: the charge handler changed — update the planted change", plantedFile, plantedOriginal, n)
	}
	patched := filepath.Join(dir, "charge_payment.go")
	if err := os.WriteFile(patched, []byte(strings.Replace(string(original), plantedOriginal, plantedChanged, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {source: patched}})
	if err != nil {
		t.Fatal(err)
	}
	overlayFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
		t.Fatal(err)
	}

	// What the golden recorded: the charge, its order and amount.
	_, recs, err := capture.ReadFile(plantedGolden)
	if err != nil {
		t.Fatal(err)
	}
	var orderID, eventID string
	var amount int64
	for _, r := range recs {
		env, err := r.Event()
		if err == nil && env.GetPaymentProcessed() != nil {
			orderID, eventID, amount = env.GetOrderId(), env.GetEventId(), env.GetPaymentProcessed().GetAmount().GetAmountMinor()
		}
	}
	if eventID == "" {
		t.Fatalf("%s holds no PAYMENT_PROCESSED: pick a golden that runs the charge", plantedGolden)
	}

	// go test puts its own go first on PATH; both builds share the build
	// cache, so only the patched package and its dependents recompile.
	base, planted := filepath.Join(dir, "sagactl-base"), filepath.Join(dir, "sagactl-planted")
	goBuild(ctx, t, "-o", base, ".")
	goBuild(ctx, t, "-overlay", overlayFile, "-o", planted, ".")

	baseState := filepath.Join(dir, "base.state.json")
	if code, out := replayAndDiff(ctx, t, base, dir, baseState); code != exitOK {
		t.Fatalf("unchanged binary: diff exit %d, want %d:\n%s", code, exitOK, out)
	}
	plantedState := filepath.Join(dir, "planted.state.json")
	code, report := replayAndDiff(ctx, t, planted, dir, plantedState)
	if code != exitProblems {
		t.Fatalf("changed binary: diff exit %d, want %d — the planted change went unnoticed:\n%s", code, exitProblems, report)
	}
	t.Logf("the planted change's report:\n%s", report)
	for _, want := range []string{
		"order " + orderID + "\n",
		"  changed PAYMENT_PROCESSED " + eventID + "\n",
		fmt.Sprintf("    payment_processed.amount.amount_minor: %d → %d\n", amount, amount+1),
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}

	// The end states differ too: the stored payment holds the changed amount.
	out, err := exec.CommandContext(ctx, base, "diff", "--topics", "payments.v1",
		"--state-want", baseState, "--state-got", plantedState, plantedGolden, plantedGolden).CombinedOutput()
	// protojson writes int64 as a string, hence the quotes.
	stateLine := fmt.Sprintf("  payments.%s.amount.amount_minor: \"%d\" → \"%d\"\n", orderID, amount, amount+1)
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitProblems || !strings.Contains(string(out), stateLine) {
		t.Errorf("end states of the two replays: %v, want exit %d and %q:\n%s", err, exitProblems, stateLine, out)
	}
}

// goBuild runs go build in this package's directory and fails the test with
// go's output on error.
func goBuild(ctx context.Context, t *testing.T, args ...string) {
	t.Helper()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "go", append([]string{"build"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("go build %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// replayAndDiff replays the golden through the payment service with the
// given sagactl binary, then diffs its payments.v1 records against the
// golden; it returns diff's exit code and report. A failed replay fails the
// test: only diff may say "different".
func replayAndDiff(ctx context.Context, t *testing.T, sagactl, dir, state string) (int, string) {
	t.Helper()
	emitted := filepath.Join(dir, filepath.Base(sagactl)+".emitted.jsonl")
	if out, err := exec.CommandContext(ctx, sagactl, "replay", "--service", "payment",
		"-o", emitted, "--state", state, plantedGolden).CombinedOutput(); err != nil {
		t.Fatalf("%s replay: %v\n%s", filepath.Base(sagactl), err, out)
	}
	out, err := exec.CommandContext(ctx, sagactl, "diff", "--topics", "payments.v1", plantedGolden, emitted).CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return exitOK, string(out)
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), string(out)
	default:
		t.Fatalf("%s diff: %v\n%s", filepath.Base(sagactl), err, out)
		return 0, ""
	}
}
