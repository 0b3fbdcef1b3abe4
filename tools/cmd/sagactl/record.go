package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/service"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/demo"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// recordEnvPrefix prefixes the Kafka TLS/SASL variables sagactl record
// reads: the services' KAFKA_TLS_* / KAFKA_SASL_* names (services/README.md)
// after "SAGACTL_".
const recordEnvPrefix = "SAGACTL"

func recordUsage(w io.Writer) {
	fmt.Fprintln(w, `usage: sagactl record [--brokers B] [--topic-prefix P] [--topics T,...] [--from X] [--to Y] [--order ID ...] [-o FILE]
       sagactl record --demo DIR

Records Kafka records of the saga topics into a capture file (JSON Lines: a header, then one
record per line with the envelope as protojson; tools/internal/capture). It reads assigned
partitions without a consumer group and commits nothing, so a running suite is undisturbed,
and stops at the end offsets it reads when each partition's scan starts. Progress goes to stderr.

--from/--to each take an RFC 3339 time (the broker's ListOffsets by timestamp finds the first
record at or after it) or an offset (applied to every partition); --to is exclusive. Mixing a
time and an offset is fine. --order keeps only those orders' records (the record key).

Kafka TLS/SASL: the services' variables with the SAGACTL_ prefix (SAGACTL_KAFKA_TLS_ENABLED,
SAGACTL_KAFKA_TLS_CA_FILE, SAGACTL_KAFKA_SASL_MECHANISM, SAGACTL_KAFKA_SASL_USERNAME, …).

--demo DIR starts the embedded dev stack in this process (free ports), runs `+"`sagactl demo`"+`'s
scenario on it (every saga path, the customer cancel and the deadline included) and writes one
recording per path into DIR (success.jsonl, payment-declined.jsonl, …), each holding that
order's records of every saga topic and, as its seed, the catalog the demo started from.

Exit status: 0 recorded, 1 --demo: a path did not end as expected (nothing written), 2 bad usage
or Kafka error.`)
}

// recordOptions are the parsed, checked flags of sagactl record.
type recordOptions struct {
	brokers []string
	prefix  string
	topics  []string
	scan    bus.ScanRange
	orders  map[string]bool
	out     string
	demoDir string
	quiet   bool
	timeout time.Duration
	sec     bus.Security
}

// orderIDList collects --order, repeatable and comma-separated.
type orderIDList []string

func (l *orderIDList) String() string { return strings.Join(*l, ",") }

func (l *orderIDList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		id, err := uuid.Parse(s)
		if err != nil {
			return fmt.Errorf("%q is not an order id (a UUID)", s)
		}
		*l = append(*l, id.String()) // the canonical form the services key records by
	}
	return nil
}

func runRecord(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, code, ok := parseRecordFlags(args, stderr)
	if !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if o.demoDir != "" {
		return recordDemo(ctx, o, stderr)
	}
	return recordKafka(ctx, o, stdout, stderr)
}

func parseRecordFlags(args []string, stderr io.Writer) (o recordOptions, code int, ok bool) {
	fs := flag.NewFlagSet("sagactl record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap `brokers` (default: the running dev stack's, from "+devstack.DefaultStateFile()+"; the local real stack: 127.0.0.1:19092)")
	prefix := fs.String("topic-prefix", "", "the suite's topic `prefix` (KAFKA_TOPIC_PREFIX; default: the dev stack's when --brokers is not given, else none)")
	topics := fs.String("topics", strings.Join(events.AllTopics, ","), "comma-separated saga `topics`, without the prefix")
	from := fs.String("from", "", "first record: an RFC 3339 `time` or an offset (default: each partition's first)")
	to := fs.String("to", "", "end, exclusive: an RFC 3339 `time` or an offset (default: each partition's end when its scan starts)")
	var orders orderIDList
	fs.Var(&orders, "order", "keep only this order `id`'s records (repeatable, or comma-separated)")
	out := fs.String("out", "-", "write the recording to this `file` (- is stdout; a name ending in .gz is gzip-compressed)")
	fs.StringVar(out, "o", "-", "shorthand for --out")
	demoDir := fs.String("demo", "", "run the demo on an in-process dev stack and write one recording per saga path into this `directory`")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	timeout := fs.Duration("timeout", 15*time.Minute, "bound on the whole command")
	fs.Usage = func() {
		recordUsage(stderr)
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return o, code, false
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fail := func(format string, a ...any) (recordOptions, int, bool) {
		fmt.Fprintf(stderr, "sagactl record: %s\n", fmt.Sprintf(format, a...))
		return o, exitError, false
	}
	if *timeout <= 0 {
		return fail("--timeout must be positive")
	}
	o.timeout, o.quiet = *timeout, *quiet
	if set["demo"] {
		for _, name := range []string{"brokers", "topic-prefix", "topics", "from", "to", "order", "out", "o"} {
			if set[name] {
				return fail("--%s does not go with --demo (it records its own stack, every path to its own file)", name)
			}
		}
		if strings.TrimSpace(*demoDir) == "" {
			return fail("--demo needs a directory")
		}
		o.demoDir = *demoDir
		return o, 0, true
	}

	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			o.topics = append(o.topics, t)
		}
	}
	if len(o.topics) == 0 {
		return fail("--topics is empty")
	}
	var err error
	if o.scan, err = scanRange(*from, *to); err != nil {
		return fail("%v", err)
	}
	if len(orders) > 0 {
		o.orders = map[string]bool{}
		for _, id := range orders {
			o.orders[id] = true
		}
	}
	if o.out = strings.TrimSpace(*out); o.out == "" {
		return fail("--out is empty (- is stdout)")
	}

	o.prefix = *prefix
	if set["brokers"] {
		var err error
		if o.brokers, err = hostPorts("brokers", *brokers); err != nil {
			return fail("%v", err)
		}
	} else {
		st, err := devstack.ReadStateFile(devstack.DefaultStateFile())
		if err == nil && st.Kafka == "" {
			err = errors.New("its state file names no Kafka (a dev stack older than sagactl record)")
		}
		if err != nil {
			return fail("no --brokers, and the dev stack's Kafka is unknown: %v\npass --brokers host:port (the local real stack: 127.0.0.1:19092)", err)
		}
		o.brokers = strings.Split(st.Kafka, ",")
		if !set["topic-prefix"] {
			o.prefix = st.TopicPrefix
		}
	}
	ks, err := config.Load[service.KafkaSecurity](recordEnvPrefix)
	if err == nil {
		o.sec, err = ks.Build(recordEnvPrefix + "_")
	}
	if err != nil {
		return fail("Kafka security: %v", err)
	}
	return o, 0, true
}

// scanRange reads --from and --to (each an offset or an RFC 3339 time, see
// parseBound) into a range, refusing one that ends before it starts.
func scanRange(from, to string) (bus.ScanRange, error) {
	var r bus.ScanRange
	var err error
	if r.From, r.FromTime, err = parseBound(from); err != nil {
		return r, fmt.Errorf("--from %v", err)
	}
	if r.To, r.ToTime, err = parseBound(to); err != nil {
		return r, fmt.Errorf("--to %v", err)
	}
	if r.From >= 0 && r.To >= 0 && r.From >= r.To {
		return r, fmt.Errorf("--from offset %d must be below --to offset %d", r.From, r.To)
	}
	if !r.FromTime.IsZero() && !r.ToTime.IsZero() && !r.FromTime.Before(r.ToTime) {
		return r, errors.New("--from time must be before --to time")
	}
	return r, nil
}

// parseBound reads a --from/--to value: "" (no bound: offset -1), an offset
// (a non-negative integer) or an RFC 3339 time.
func parseBound(v string) (offset int64, at time.Time, err error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1, time.Time{}, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, time.Time{}, fmt.Errorf("%q: an offset must not be negative", v)
		}
		return n, time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (e.g. 2026-11-30T12:00:00Z) nor an offset", v)
	}
	return -1, t, nil
}

// toolVersion names the sagactl build in a recording's header: its module
// version, when stamped the commit (dirty: uncommitted changes were part of
// it; `go run` and workspace builds stamp none), and the Go version.
func toolVersion() string {
	v := "sagactl"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v + " (unknown build)"
	}
	v += " " + info.Main.Version
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev[:min(12, len(rev))] + dirty
	}
	return v + " " + info.GoVersion
}

// progressLine reports one partition read.
func progressLine(w io.Writer, r capture.Range, kept int) {
	fmt.Fprintf(w, "record: %s/%d offsets %d..%d (%d read), %d kept\n", r.Topic, r.Partition, r.Start, r.End, max(0, r.End-r.Start), kept)
}

func recordKafka(ctx context.Context, o recordOptions, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "sagactl record: %v\n", err)
		return exitError
	}
	// The header names the ranges, known only once every partition is read:
	// the records wait in a spool file, so a big recording needs no memory
	// and a failed one leaves no output file behind.
	spool, err := os.CreateTemp("", "sagactl-record-*.jsonl")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	bw := bufio.NewWriter(spool)
	// Encoded as capture.Writer encodes records (HTML left unescaped).
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var progress func(capture.Range, int)
	if !o.quiet {
		progress = func(r capture.Range, kept int) { progressLine(stderr, r, kept) }
	}
	kept := 0
	src := capture.Source{Brokers: o.brokers, Security: o.sec, Prefix: o.prefix, Topics: o.topics, Range: o.scan, OrderIDs: o.orders}
	ranges, err := capture.Scan(ctx, src, func(r capture.Record) error { kept++; return enc.Encode(r) }, progress)
	if err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	h := capture.NewHeader("kafka://"+strings.Join(o.brokers, ","), toolVersion(), time.Now())
	h.TopicPrefix, h.Ranges = o.prefix, ranges
	if err := writeRecording(o.out, h, spool, stdout); err != nil {
		return fail(err)
	}
	if !o.quiet {
		where := o.out
		if where == "-" {
			where = "stdout"
		}
		fmt.Fprintf(stderr, "record: %d records from %d partitions to %s\n", kept, len(ranges), where)
	}
	return exitOK
}

// writeRecording writes the header h, then the encoded records in body, to
// path ("-": stdout; .gz: gzip). A file that could not be written whole is
// removed.
func writeRecording(path string, h capture.Header, body io.Reader, stdout io.Writer) (err error) {
	var w io.Writer = stdout
	var closers []io.Closer
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				os.Remove(path)
			}
		}()
		w, closers = f, []io.Closer{f}
		if strings.HasSuffix(path, ".gz") {
			zw := gzip.NewWriter(f)
			w, closers = zw, []io.Closer{zw, f}
		}
	}
	hw, err := capture.NewWriter(w, h)
	if err == nil {
		err = hw.Close() // flushes the header; closes nothing of ours
	}
	if err == nil {
		_, err = io.Copy(w, body)
	}
	for _, c := range closers {
		err = errors.Join(err, c.Close())
	}
	return err
}

// demoPath is one saga path of the demo: its recording's file name and the
// orders-topic event that ends it.
type demoPath struct {
	scenario string // demo.Placed.Scenario
	slug     string // file name without .jsonl
	terminal eventsv1.EventType
	reason   eventsv1.CancelReason // of ORDER_CANCELLED
}

// demoPaths are the recordings `sagactl record --demo` writes, one per path
// (tools/testdata/recordings holds them).
var demoPaths = []demoPath{
	{"success", "success", eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED, 0},
	{"success, two lines", "success-two-lines", eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED, 0},
	{"out of stock", "out-of-stock", eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED, eventsv1.CancelReason_CANCEL_REASON_OUT_OF_STOCK},
	{"unknown SKU", "unknown-sku", eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED, eventsv1.CancelReason_CANCEL_REASON_OUT_OF_STOCK},
	{"payment declined", "payment-declined", eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED, eventsv1.CancelReason_CANCEL_REASON_PAYMENT_FAILED},
	{"shipment failed", "shipment-failed", eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED, eventsv1.CancelReason_CANCEL_REASON_SHIPMENT_FAILED},
	{"customer cancel before shipment", "customer-cancel-before-shipment", eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED, eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED},
	{"deadline", "deadline-late-work-compensated", eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED, eventsv1.CancelReason_CANCEL_REASON_TIMEOUT},
}

// checkEnding checks that the last orders-topic record of recs (one order's)
// is p's terminal event; the other topics' records may come later (late
// work and its compensation).
func (p demoPath) checkEnding(recs []capture.Record) error {
	var last *capture.Record
	for i := range recs {
		if recs[i].Topic == events.TopicOrders {
			last = &recs[i]
		}
	}
	if last == nil {
		return fmt.Errorf("%s: no %s record", p.slug, events.TopicOrders)
	}
	env, err := last.Event()
	if err != nil {
		return fmt.Errorf("%s: %w", p.slug, err)
	}
	got := env.GetType().String()
	if env.GetType() == eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED {
		got += "/" + env.GetOrderCancelled().GetReason().String()
	}
	want := p.terminal.String()
	if p.terminal == eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED {
		want += "/" + p.reason.String()
	}
	if got != want {
		return fmt.Errorf("%s: the order's last event is %s, want %s", p.slug, got, want)
	}
	return nil
}

func recordDemo(ctx context.Context, o recordOptions, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sagactl record --demo: %s\n", fmt.Sprintf(format, a...))
		return exitError
	}
	if err := os.MkdirAll(o.demoDir, 0o755); err != nil {
		return fail("%v", err)
	}
	var progress io.Writer = io.Discard
	if !o.quiet {
		progress = stderr
	}
	// As `sagactl demo --dev`: free ports, and a deadline no busy machine
	// reaches, so only the deadline path's order (given a short one by the
	// demo through the Control) times out.
	free := "127.0.0.1:0"
	all := suite.Addrs{Order: free, Inventory: free, Payment: free, Shipping: free, Notification: free}
	st, err := devstack.Start(ctx, devstack.Options{
		GRPC: all, Ops: all, KafkaAddr: free, MySQLAddr: free, MongoAddr: free, GatewayAddr: free, OrderDeadline: 10 * time.Minute,
		LogLevel: config.LevelError, LogOutput: stderr,
	})
	if err != nil {
		return fail("dev stack: %v", err)
	}
	defer func() {
		if err := st.Stop(); err != nil {
			fmt.Fprintf(stderr, "sagactl record --demo: stop dev stack: %v\n", err)
		}
	}()
	fmt.Fprintf(progress, "dev stack ready in %s (in-process Kafka %s)\n", st.ReadyIn.Round(time.Millisecond), st.Servers.Kafka)
	conns, err := suite.Dial(st.GRPC, suite.WithToken(st.ToolToken("sagactl-record")))
	if err != nil {
		return fail("%v", err)
	}
	defer conns.Close()
	res, err := demo.Run(ctx, conns.Clients, demo.Options{Control: st.Control(), Progress: progress, GatewayURL: st.GatewayURL})
	if err != nil {
		return fail("demo: %v", err)
	}
	// Goldens only from a demo that went as it should.
	if !res.Summary.OK() || len(res.Skipped) > 0 {
		fmt.Fprintf(stderr, "sagactl record --demo: the demo did not go as expected (summary %+v, skipped %v); nothing written\n", res.Summary, res.Skipped)
		return exitProblems
	}
	byScenario := map[string]string{}
	for _, p := range res.Orders {
		byScenario[p.Scenario] = p.ID
	}
	ids := map[string]bool{}
	for _, p := range demoPaths {
		if byScenario[p.scenario] == "" {
			return fail("the demo placed no order for %q", p.scenario)
		}
		ids[byScenario[p.scenario]] = true
	}

	// One scan for all eight orders; records go to their order's file.
	perOrder := map[string][]capture.Record{}
	var scanProgress func(capture.Range, int)
	if !o.quiet {
		scanProgress = func(r capture.Range, kept int) { progressLine(stderr, r, kept) }
	}
	brokers := strings.Split(st.Servers.Kafka, ",")
	ranges, err := capture.Scan(ctx, capture.Source{Brokers: brokers, Prefix: st.Servers.TopicPrefix, Topics: events.AllTopics,
		Range: bus.ScanRange{From: -1, To: -1}, OrderIDs: ids},
		func(r capture.Record) error { perOrder[r.Key] = append(perOrder[r.Key], r); return nil }, scanProgress)
	if err != nil {
		return fail("%v", err)
	}
	seed := &capture.Seed{}
	for _, s := range res.Seeded {
		seed.Products = append(seed.Products, capture.SeedProduct{SKU: s.SKU, Name: s.Name, PriceMinor: s.PriceMinor,
			Currency: s.Currency, StockQuantity: int32(s.Available)})
	}
	h := capture.NewHeader("demo", toolVersion(), time.Now())
	h.TopicPrefix, h.Ranges, h.Seed = st.Servers.TopicPrefix, ranges, seed
	// Check every path before writing any file: the goldens change together.
	for _, p := range demoPaths {
		if err := p.checkEnding(perOrder[byScenario[p.scenario]]); err != nil {
			fmt.Fprintf(stderr, "sagactl record --demo: %v; nothing written\n", err)
			return exitProblems
		}
	}
	for _, p := range demoPaths {
		path := filepath.Join(o.demoDir, p.slug+".jsonl")
		recs := perOrder[byScenario[p.scenario]]
		if err := capture.WriteFile(path, h, recs); err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(progress, "record: %-34s %s  %d records\n", p.scenario, path, len(recs))
	}
	return exitOK
}
