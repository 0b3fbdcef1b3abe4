package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
)

// goldenDir holds the committed recordings of every saga path.
const goldenDir = "../../testdata/recordings"

// Bad usage is refused with a message naming the flag, before anything
// connects (--brokers points nowhere; no dev stack is found).
func TestRecordUsage(t *testing.T) {
	t.Setenv(devstack.StateFileEnv, filepath.Join(t.TempDir(), "no-dev-stack.env"))
	nowhere := []string{"--brokers", "127.0.0.1:1"}
	cases := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"help", []string{"-h"}, exitOK, "--demo DIR starts the embedded dev stack"},
		{"bad from", append([]string{"--from", "yesterday"}, nowhere...), exitError, `--from "yesterday" is neither an RFC 3339 time`},
		{"bad to", append([]string{"--to", "2026-13-01T00:00:00Z"}, nowhere...), exitError, `--to "2026-13-01T00:00:00Z" is neither`},
		{"negative offset", append([]string{"--from", "-3"}, nowhere...), exitError, `--from "-3": an offset must not be negative`},
		{"offsets reversed", append([]string{"--from", "7", "--to", "7"}, nowhere...), exitError, "--from offset 7 must be below --to offset 7"},
		{"times reversed", append([]string{"--from", "2026-11-30T12:00:00Z", "--to", "2026-11-30T11:00:00Z"}, nowhere...), exitError, "--from time must be before --to time"},
		{"order not a uuid", append([]string{"--order", "0194f5c3-0000-7000-8000-000000000011,order-7"}, nowhere...), exitError, `invalid value "0194f5c3-0000-7000-8000-000000000011,order-7" for flag -order: "order-7" is not an order id (a UUID)`},
		{"bad broker", []string{"--brokers", "localhost"}, exitError, `--brokers: "localhost" is not host:port`},
		{"empty topics", append([]string{"--topics", " , "}, nowhere...), exitError, "--topics is empty"},
		{"empty out", append([]string{"-o", ""}, nowhere...), exitError, "--out is empty"},
		{"no brokers, no dev stack", []string{}, exitError, "pass --brokers host:port"},
		{"demo with brokers", []string{"--demo", t.TempDir(), "--brokers", "127.0.0.1:1"}, exitError, "--brokers does not go with --demo"},
		{"demo with order", []string{"--demo", t.TempDir(), "--order", "0194f5c3-0000-7000-8000-000000000011"}, exitError, "--order does not go with --demo"},
		{"demo without dir", []string{"--demo", " "}, exitError, "--demo needs a directory"},
		{"stray argument", append(append([]string{}, nowhere...), "extra"), exitError, `unexpected arguments ["extra"]`},
		{"zero timeout", append([]string{"--timeout", "0s"}, nowhere...), exitError, "--timeout must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := sagactl(t, append([]string{"record"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.inStderr) || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit %d and %q", code, out, stderr, tc.code, tc.inStderr)
			}
		})
	}
	t.Run("bad SASL mechanism", func(t *testing.T) {
		t.Setenv("SAGACTL_KAFKA_SASL_MECHANISM", "GSSAPI")
		code, _, stderr := sagactl(t, append([]string{"record"}, nowhere...)...)
		if code != exitError || !strings.Contains(stderr, "SAGACTL_KAFKA_SASL_MECHANISM") {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
	})
	t.Run("kafka unreachable", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "x.jsonl")
		code, _, stderr := sagactl(t, "record", "--brokers", "127.0.0.1:1", "--timeout", "20s", "-o", out)
		if code != exitError || !strings.Contains(stderr, "no broker reachable") {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("a failed recording left %s behind (%v)", out, err)
		}
	})
}

// recordEvent is an envelope of order id as the bus publishes it, stamped
// with broker time at (so time ranges are exact, whatever the clock does).
func recordEvent(t *testing.T, prefix, orderID string, payload proto.Message, at time.Time) kafka.Message {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: orderID, CustomerID: "0194f5c3-0000-7000-8000-0000000000c1", Producer: "order",
		CausationID: testenv.IDFor("record-" + orderID + at.String()), OccurredAt: at}, payload)
	if err != nil {
		t.Fatal(err)
	}
	m, err := bus.EncodeEnvelope(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	km := kafka.Message{Topic: prefix + m.Topic, Key: []byte(m.Key), Value: m.Value, Time: at}
	for k, v := range m.Headers {
		km.Headers = append(km.Headers, kafka.Header{Key: k, Value: []byte(v)})
	}
	return km
}

func orderCreatedPayload(at time.Time) *eventsv1.OrderCreated {
	return &eventsv1.OrderCreated{Total: &commonv1.Money{AmountMinor: 1250, Currency: "EUR"},
		Lines:              []*commonv1.LineItem{{Sku: "SKU-1", Quantity: 1, UnitPriceMinor: 1250}},
		ShippingAddress:    &commonv1.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"},
		PaymentMethodToken: "tok_visa", Deadline: timestamppb.New(at.Add(time.Minute))}
}

// produce writes msgs with their own timestamps (the topic keeps the
// producer's CreateTime), keyed partitioning as the services'.
func produce(t *testing.T, ctx context.Context, brokers []string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond, MaxAttempts: 5, Transport: &kafka.Transport{}}
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// readRecording reads a recording sagactl record wrote.
func readRecording(t *testing.T, path string) (capture.Header, []capture.Record) {
	t.Helper()
	h, recs, err := capture.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return h, recs
}

// sagactl record on the local real Kafka: the default saga topics under a
// prefix, chosen orders only, to a file, .gz or stdout; then a time range
// and an offset range on a one-partition topic.
func TestRecordFromKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a bound for a hung broker
	defer cancel()
	brokers := testenv.Brokers()
	prefix := testenv.UniqueName("test.sagactl.record.") + "."
	var specs []bus.TopicSpec
	for _, topic := range events.AllTopics {
		parts := 1
		if topic == events.TopicOrders {
			parts = 3
		}
		specs = append(specs, bus.TopicSpec{Name: prefix + topic, Partitions: parts, ReplicationFactor: 1})
	}
	if err := bus.EnsureTopics(ctx, brokers, specs...); err != nil {
		t.Fatalf("Kafka for tests (SAGASUITE_KAFKA_BROKERS; run `make infra-up`): %v", err)
	}
	// Broker timestamps in the recent past, an hour apart: inside any
	// retention, and far from each other.
	base := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	a, b, c := "0194f5c3-0000-7000-8000-0000000000a1", "0194f5c3-0000-7000-8000-0000000000b2", "0194f5c3-0000-7000-8000-0000000000c3"
	produce(t, ctx, brokers,
		recordEvent(t, prefix, a, orderCreatedPayload(base), base),
		recordEvent(t, prefix, b, orderCreatedPayload(base), base),
		recordEvent(t, prefix, c, orderCreatedPayload(base), base),
		recordEvent(t, prefix, a, &eventsv1.OrderCompleted{}, base.Add(time.Hour)),
		recordEvent(t, prefix, b, &eventsv1.OrderCompleted{}, base.Add(time.Hour)))
	common := []string{"record", "--brokers", strings.Join(brokers, ","), "--topic-prefix", prefix}
	dir := t.TempDir()

	// --order (repeated and comma-separated, upper case accepted) to a plain file.
	out := filepath.Join(dir, "ac.jsonl")
	before := time.Now().UTC()
	code, stdout, stderr := sagactl(t, append(common, "--order", strings.ToUpper(a), "--order", c+",", "-o", out)...)
	if code != exitOK || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"record: orders.v1/0 offsets 0..", "record: orders.v1/2 ", "record: shipments.v1/0 offsets 0..0 (0 read), 0 kept",
		"record: 3 records from 7 partitions to " + out} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	h, recs := readRecording(t, out)
	if h.Source != "kafka://"+strings.Join(brokers, ",") || h.TopicPrefix != prefix || len(h.Ranges) != 7 ||
		!strings.HasPrefix(h.ToolVersion, "sagactl ") || h.CapturedAt.Before(before.Add(-time.Second)) || h.Seed != nil {
		t.Errorf("header %+v", h)
	}
	var got []string
	for _, r := range recs {
		env, err := r.Event()
		if err != nil || r.Topic != events.TopicOrders || r.Key != env.GetOrderId() {
			t.Errorf("record %+v: %v", r, err)
			continue
		}
		got = append(got, r.Key[len(r.Key)-2:]+"/"+events.TypeName(env.GetType()))
	}
	slices.Sort(got)
	if want := []string{"a1/ORDER_COMPLETED", "a1/ORDER_CREATED", "c3/ORDER_CREATED"}; !slices.Equal(got, want) {
		t.Errorf("records %v, want %v", got, want)
	}

	// --from a time: only the later hour; gzip by the name; --quiet.
	gz := filepath.Join(dir, "late.jsonl.gz")
	code, _, stderr = sagactl(t, append(common, "--topics", events.TopicOrders, "--from", base.Add(30*time.Minute).Format(time.RFC3339), "--quiet", "-o", gz)...)
	if code != exitOK || stderr != "" {
		t.Fatalf("--from time: exit %d, stderr:\n%s", code, stderr)
	}
	h, recs = readRecording(t, gz)
	if len(h.Ranges) != 3 || len(recs) != 2 {
		t.Fatalf("--from time: ranges %+v, %d records", h.Ranges, len(recs))
	}
	for _, r := range recs {
		if r.Header(bus.HeaderType) != "ORDER_COMPLETED" || !r.Time().Equal(base.Add(time.Hour)) {
			t.Errorf("--from time kept %s at %s", r.Header(bus.HeaderType), r.Time())
		}
	}

	// --to a time, to stdout: only the first hour.
	code, stdout, _ = sagactl(t, append(common, "--topics", events.TopicOrders, "--to", base.Add(30*time.Minute).Format(time.RFC3339Nano), "--quiet")...)
	if code != exitOK {
		t.Fatalf("--to time: exit %d", code)
	}
	r, err := capture.NewReader(strings.NewReader(stdout))
	if err != nil {
		t.Fatalf("stdout is no recording: %v\n%s", err, stdout)
	}
	n := 0
	for rec, err := r.Next(); err == nil; rec, err = r.Next() {
		n++
		if rec.Header(bus.HeaderType) != "ORDER_CREATED" {
			t.Errorf("--to time kept %s", rec.Header(bus.HeaderType))
		}
	}
	if n != 3 {
		t.Errorf("--to time: %d records, want the 3 ORDER_CREATED", n)
	}

	// Without --brokers: the dev stack's Kafka and topic prefix, from its
	// state file (here one naming the real Kafka and this test's prefix).
	stateFile := filepath.Join(dir, "dev-stack.env")
	keyFile := filepath.Join(dir, "key.jwk") // must exist; record never reads it
	if err := os.WriteFile(keyFile, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (devstack.State{PID: os.Getpid(), SigningKey: keyFile, Issuer: "i", Audience: "a",
		Kafka: strings.Join(brokers, ","), TopicPrefix: prefix}).Write(stateFile); err != nil {
		t.Fatal(err)
	}
	t.Setenv(devstack.StateFileEnv, stateFile)
	code, stdout, stderr = sagactl(t, "record", "--order", b, "--quiet")
	if code != exitOK {
		t.Fatalf("from the state file: exit %d, stderr:\n%s", code, stderr)
	}
	if r, err := capture.NewReader(strings.NewReader(stdout)); err != nil || r.Header.TopicPrefix != prefix ||
		strings.Count(stdout, `"key":"`+b+`"`) != 2 {
		t.Errorf("from the state file: %v\n%s", err, stdout)
	}

	// Offsets on a one-partition topic: five records at offsets 0..4.
	one := testenv.UniqueName("test.sagactl.record1.") + "."
	if err := bus.EnsureTopics(ctx, brokers, bus.TopicSpec{Name: one + events.TopicOrders, Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	var msgs []kafka.Message
	for i := range 5 {
		msgs = append(msgs, recordEvent(t, one, a, orderCreatedPayload(base), base.Add(time.Duration(i)*time.Hour)))
	}
	produce(t, ctx, brokers, msgs...)
	oneArgs := []string{"record", "--brokers", strings.Join(brokers, ","), "--topic-prefix", one, "--topics", events.TopicOrders, "--quiet"}
	runs := 0
	offsetsOf := func(extra ...string) []int64 {
		t.Helper()
		runs++
		path := filepath.Join(dir, "one-"+strconv.Itoa(runs)+".jsonl")
		code, _, stderr := sagactl(t, append(append(oneArgs, "-o", path), extra...)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d, stderr:\n%s", extra, code, stderr)
		}
		_, recs := readRecording(t, path)
		var offs []int64
		for _, r := range recs {
			offs = append(offs, r.Offset)
		}
		return offs
	}
	if got := offsetsOf("--from", "1", "--to", "3"); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("--from 1 --to 3: offsets %v", got)
	}
	// Mixed: from the record at base+2h (offset 2) to offset 4, exclusive.
	if got := offsetsOf("--from", base.Add(90*time.Minute).Format(time.RFC3339), "--to", "4"); !slices.Equal(got, []int64{2, 3}) {
		t.Errorf("--from time --to 4: offsets %v", got)
	}
	// A start past everything: an empty recording, not an error.
	if got := offsetsOf("--from", base.Add(24*time.Hour).Format(time.RFC3339)); len(got) != 0 {
		t.Errorf("--from after the last record: offsets %v", got)
	}
}

// sagactl record --demo on the in-process dev stack: one recording per saga
// path, each holding only its order's records, ending as the path must, with
// the demo's catalog as its seed.
func TestRecordDemo(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := sagactl(t, "record", "--demo", dir, "--timeout", "10m") // a bound for a hung stack
	if code != exitOK || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) != len(demoPaths) {
		t.Fatalf("files %v (%v), want %d", files, err, len(demoPaths))
	}
	var seedSKUs []string
	for _, p := range demoPaths {
		h, recs := readRecording(t, filepath.Join(dir, p.slug+".jsonl"))
		checkDemoRecording(t, p, h, recs)
		var skus []string
		for _, s := range h.Seed.Products {
			skus = append(skus, s.SKU)
		}
		if seedSKUs == nil {
			seedSKUs = skus
		} else if !slices.Equal(skus, seedSKUs) {
			t.Errorf("%s: seed %v, another file's %v", p.slug, skus, seedSKUs)
		}
	}
	if !strings.Contains(stderr, "demo: placing 6 orders at once") || !strings.Contains(stderr, "record: orders.v1/0 offsets") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
}

// checkDemoRecording checks one path's recording: read back whole, every
// record an envelope of the one order, the order's last event the path's,
// the demo's three products (20 mugs, 10 tees, 1 poster) as the seed, and
// the order's lines naming seeded SKUs (but the unknown one).
func checkDemoRecording(t *testing.T, p demoPath, h capture.Header, recs []capture.Record) {
	t.Helper()
	if h.Source != "demo" || h.Seed == nil || len(h.Ranges) != len(events.AllTopics)*3 {
		t.Errorf("%s: header %+v", p.slug, h)
		return
	}
	stock := map[string]int32{}
	for _, s := range h.Seed.Products {
		suffix := s.SKU[strings.LastIndex(s.SKU, "-")+1:]
		if !strings.HasPrefix(s.SKU, "DEMO-") || s.Currency != "EUR" || s.PriceMinor <= 0 {
			t.Errorf("%s: seed product %+v", p.slug, s)
		}
		stock[suffix] = s.StockQuantity
		stock[s.SKU] = s.StockQuantity
	}
	if len(h.Seed.Products) != 3 || stock["MUG"] != 20 || stock["TEE"] != 10 || stock["POSTER"] != 1 {
		t.Errorf("%s: seed %+v", p.slug, h.Seed.Products)
	}
	if err := p.checkEnding(recs); err != nil {
		t.Error(err)
	}
	orderID := ""
	for _, r := range recs {
		env, err := r.Event()
		if err != nil {
			t.Errorf("%s: %v", p.slug, err)
			continue
		}
		if orderID == "" {
			orderID = r.Key
		}
		if r.Key != orderID || env.GetOrderId() != orderID {
			t.Errorf("%s: records of two orders, %s and %s", p.slug, orderID, r.Key)
		}
		for _, l := range env.GetOrderCreated().GetLines() {
			if _, seeded := stock[l.GetSku()]; seeded == (p.slug == "unknown-sku") {
				t.Errorf("%s: order line SKU %s (seeded: %v)", p.slug, l.GetSku(), seeded)
			}
		}
	}
}

// The committed goldens stay readable and keep their paths' endings; and the
// ending check is no rubber stamp: without its terminal event a recording
// fails it.
func TestGoldenRecordings(t *testing.T) {
	for _, p := range demoPaths {
		path := filepath.Join(goldenDir, p.slug+".jsonl")
		h, recs, err := capture.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v (re-record: see %s/README.md)", path, err, goldenDir)
			continue
		}
		checkDemoRecording(t, p, h, recs)
		var cut []capture.Record
		for _, r := range recs {
			if !(r.Topic == events.TopicOrders && (r.Header(bus.HeaderType) == "ORDER_COMPLETED" || r.Header(bus.HeaderType) == "ORDER_CANCELLED")) {
				cut = append(cut, r)
			}
		}
		if err := p.checkEnding(cut); err == nil {
			t.Errorf("%s without its terminal event passes the ending check", p.slug)
		}
	}
	// Another path's ending is refused too.
	_, recs, err := capture.ReadFile(filepath.Join(goldenDir, "success.jsonl"))
	if err == nil {
		if err := demoPaths[len(demoPaths)-1].checkEnding(recs); err == nil || !strings.Contains(err.Error(), "ORDER_COMPLETED") {
			t.Errorf("the success recording passes as the deadline path: %v", err)
		}
	}
}
