package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
)

const diffOrderID = "0194f5c3-0000-7000-8000-000000000010"

var diffAt = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// diffEvents are an order's creation and the payment two steps later.
func diffEvents(t *testing.T) (created, paid *eventsv1.Envelope) {
	t.Helper()
	meta := events.Meta{OrderID: diffOrderID, CustomerID: "0194f5c3-0000-7000-8000-000000000001",
		Producer: "order", CausationID: "0194f5c3-0000-7000-8000-0000000000aa", OccurredAt: diffAt}
	created, err := events.New(meta, &eventsv1.OrderCreated{Total: &commonv1.Money{AmountMinor: 1250, Currency: "EUR"},
		Lines:              []*commonv1.LineItem{{Sku: "SKU-1", Quantity: 1, UnitPriceMinor: 1250}},
		ShippingAddress:    &commonv1.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"},
		PaymentMethodToken: "tok_visa", Deadline: timestamppb.New(diffAt.Add(time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	meta.Producer, meta.CausationID = "payment", created.GetEventId()
	paid, err = events.New(meta, &eventsv1.PaymentProcessed{PaymentId: "0194f5c3-0000-7000-8000-0000000000c1",
		Amount: &commonv1.Money{AmountMinor: 1250, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	return created, paid
}

func writeCapture(t *testing.T, path string, h capture.Header, envs ...*eventsv1.Envelope) {
	t.Helper()
	recs := make([]capture.Record, len(envs))
	for i, env := range envs {
		m, err := bus.EncodeEnvelope(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = capture.FromMessage(m, 0, int64(i), diffAt, "")
	}
	if err := capture.WriteFile(path, h, recs); err != nil {
		t.Fatal(err)
	}
}

func runDiffArgs(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"diff"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDiffCommandExitCodes(t *testing.T) {
	dir := t.TempDir()
	created, paid := diffEvents(t)
	changed := proto.Clone(paid).(*eventsv1.Envelope)
	changed.GetPaymentProcessed().Amount.AmountMinor = 1300
	h := capture.NewHeader("demo", "test", diffAt)
	want, same, got := filepath.Join(dir, "want.jsonl"), filepath.Join(dir, "same.jsonl.gz"), filepath.Join(dir, "got.jsonl")
	writeCapture(t, want, h, created, paid)
	writeCapture(t, same, capture.NewHeader("replay", "other", diffAt.Add(time.Hour)), created, paid)
	writeCapture(t, got, h, created, changed)

	if code, out, errOut := runDiffArgs(want, same); code != exitOK || !strings.HasPrefix(out, "no differences") {
		t.Fatalf("same events: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runDiffArgs("--", want, same); code != exitOK {
		t.Fatalf("after --: exit %d\n%s%s", code, out, errOut)
	}
	// Flags may follow the files.
	code, out, errOut := runDiffArgs(want, got, "--ignore", "producer")
	if code != exitProblems || errOut != "" {
		t.Fatalf("changed amount: exit %d, stderr %q", code, errOut)
	}
	line := "    payment_processed.amount.amount_minor: 1250 → 1300\n"
	if !strings.Contains(out, "changed PAYMENT_PROCESSED "+paid.GetEventId()+"\n"+line) {
		t.Fatalf("report lacks %q:\n%s", line, out)
	}
	if code, out, _ := runDiffArgs("--ignore", "payment_processed.amount", want, got); code != exitOK {
		t.Fatalf("ignored path still reported: exit %d\n%s", code, out)
	}

	// A replay of the payment service alone emits only its own topic's events.
	paymentOnly := filepath.Join(dir, "payment.jsonl")
	writeCapture(t, paymentOnly, h, paid)
	if code, out, _ := runDiffArgs(want, paymentOnly); code != exitProblems || !strings.Contains(out, "missing ORDER_CREATED") {
		t.Fatalf("all topics: exit %d\n%s", code, out)
	}
	if code, out, _ := runDiffArgs("--topics", "payments.v1", want, paymentOnly); code != exitOK {
		t.Fatalf("--topics payments.v1: exit %d\n%s", code, out)
	}

	stateA, stateB, bad := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json"), filepath.Join(dir, "bad.json")
	for path, text := range map[string]string{stateA: `{"stock":{"SKU-1":9}}`, stateB: `{"stock":{"SKU-1":10}}`, bad: `{"stock":`} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ = runDiffArgs("--state-want", stateA, "--state-got", stateB, want, same)
	if code != exitProblems || !strings.Contains(out, "  stock.SKU-1: 9 → 10\n") {
		t.Fatalf("state difference: exit %d\n%s", code, out)
	}

	for name, args := range map[string][]string{
		"one file":        {want},
		"three files":     {want, got, same},
		"missing file":    {want, filepath.Join(dir, "nope.jsonl")},
		"not a capture":   {want, stateA},
		"state alone":     {"--state-want", stateA, want, got},
		"bad state JSON":  {"--state-want", stateA, "--state-got", bad, want, got},
		"unknown flag":    {"--nope", want, got},
		"missing state":   {"--state-want", stateA, "--state-got", filepath.Join(dir, "nope.json"), want, got},
		"no arguments":    {},
		"update a subset": {"--update", "--topics", "payments.v1", want, paymentOnly},
		"ignore no value": {want, got, "--ignore"},
	} {
		code, out, errOut := runDiffArgs(args...)
		if code != exitError || errOut == "" || out != "" {
			t.Errorf("%s: exit %d (want %d), stdout %q, stderr %q", name, code, exitError, out, errOut)
		}
	}
	if code, _, errOut := runDiffArgs("-h"); code != exitOK || !strings.Contains(errOut, "example:") {
		t.Fatalf("-h: exit %d\n%s", code, errOut)
	}
}

func TestDiffUpdateRewritesGoldens(t *testing.T) {
	dir := t.TempDir()
	created, paid := diffEvents(t)
	golden := capture.NewHeader("demo", "v1", diffAt)
	golden.Seed = &capture.Seed{Products: []capture.SeedProduct{{SKU: "SKU-1", PriceMinor: 1250, Currency: "EUR", StockQuantity: 10}}}
	want, got := filepath.Join(dir, "golden.jsonl.gz"), filepath.Join(dir, "got.jsonl")
	writeCapture(t, want, golden, created) // the golden lacks the payment
	gotHeader := capture.NewHeader("replay", "v2", diffAt.Add(24*time.Hour))
	writeCapture(t, got, gotHeader, created, paid)
	stateWant, stateGot := filepath.Join(dir, "state.json"), filepath.Join(dir, "got.state.json")
	if err := os.WriteFile(stateWant, []byte(`{"paid":false}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateGot, []byte(`{"paid":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	state := []string{"--state-want", stateWant, "--state-got", stateGot}

	if code, out, _ := runDiffArgs(append(state, want, got)...); code != exitProblems || !strings.Contains(out, "extra   PAYMENT_PROCESSED") {
		t.Fatalf("before update: exit %d\n%s", code, out)
	}
	code, out, errOut := runDiffArgs(append(state, "--update", want, got)...)
	if code != exitOK || !strings.Contains(out, "updated "+want+"\n") || !strings.Contains(out, "updated "+stateWant+"\n") {
		t.Fatalf("update: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runDiffArgs(append(state, want, got)...); code != exitOK {
		t.Fatalf("after update: exit %d\n%s", code, out)
	}
	h, recs, err := capture.ReadFile(want) // still gzip: ReadFile would fail otherwise
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || h.Source != "demo" || h.Seed == nil || len(h.Seed.Products) != 1 ||
		h.ToolVersion != "v2" || !h.CapturedAt.Equal(gotHeader.CapturedAt) {
		t.Fatalf("rewritten golden: header %+v, %d records", h, len(recs))
	}
	if b, _ := os.ReadFile(stateWant); string(b) != `{"paid":true}` {
		t.Fatalf("state golden: %s", b)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*update*")); len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
	if code, out, _ := runDiffArgs("--update", want, got); code != exitOK || !strings.Contains(out, "nothing to update") {
		t.Fatalf("update of a current golden: exit %d\n%s", code, out)
	}
}
