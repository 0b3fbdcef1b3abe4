package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// defaultDLQBrokers is the local real stack's Kafka (deploy/local/infra.sh,
// libs/testenv), where services run by hand and tests dead-letter; the dev
// stack's in-process Kafka listens on 127.0.0.1:29092.
const defaultDLQBrokers = "127.0.0.1:19092"

func dlqUsage(w io.Writer) {
	fmt.Fprintln(w, `usage: sagactl dlq <list|show|redrive|drop> (--service NAME [--topic-prefix P] | --group GROUP) [flags]

The dead letters of one consumer group (topic "<group>.dlq"):
  list      the open dead letters, filtered by --order, --type, --id, --since/--until; --all adds resolved ones
  show      one dead letter (--partition/--offset, or --id) with every header and the decoded envelope
  redrive   re-publish to the source topic with the original headers and a redrive marker
  drop      mark resolved without re-publishing
redrive and drop are DRY RUNS unless --apply; they print one JSON audit line per dead letter and
record applied actions in "<group>.dlq.audit", which list reads to hide resolved ones.
They act on one dead letter (--partition/--offset or --id) or on every open one matching the filters.

Exit status: 0 done, 1 show found nothing, 2 bad usage or Kafka error.
`+"`sagactl dlq <command> -h`"+` shows a command's flags.`)
}

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		dlqUsage(stderr)
		if len(args) == 0 {
			return exitError
		}
		return exitOK
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "list", "show", "redrive", "drop":
	default:
		fmt.Fprintf(stderr, "sagactl dlq: unknown command %q\n\n", sub)
		dlqUsage(stderr)
		return exitError
	}
	o, code, ok := parseDLQFlags(sub, rest, stderr)
	if !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	q, err := bus.NewDeadLetterQueue(o.brokers, bus.DeadLetterTopic(o.group), bus.WithDeadLetterOperator(operator()))
	if err != nil {
		fmt.Fprintf(stderr, "sagactl dlq %s: %v\n", sub, err)
		return exitError
	}
	defer q.Close()
	switch sub {
	case "list":
		code = dlqList(ctx, q, o, stdout, stderr)
	case "show":
		code = dlqShow(ctx, q, o, stdout, stderr)
	default:
		code = dlqAct(ctx, q, o, sub, stdout, stderr)
	}
	return code
}

// dlqOptions are the parsed, checked flags of a dlq command.
type dlqOptions struct {
	brokers []string
	group   string
	timeout time.Duration
	asJSON  bool

	filter bus.DeadLetterFilter
	// One dead letter by position (hasPos) — else by filter.
	hasPos    bool
	partition int
	offset    int64

	apply, force bool
	reason       string
}

// parseDLQFlags registers the flags sub takes, parses and checks them. ok is
// false when the caller should return code.
func parseDLQFlags(sub string, args []string, stderr io.Writer) (o dlqOptions, code int, ok bool) {
	fs := flag.NewFlagSet("sagactl dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", defaultDLQBrokers, "comma-separated Kafka bootstrap `brokers` (the dev stack's: 127.0.0.1:29092)")
	group := fs.String("group", "", "the consumer `group`, topic prefix included (e.g. sagasuite-dev.order)")
	service := fs.String("service", "", "the `service` whose group to use: "+strings.Join(suite.Services, ", ")+" (instead of --group)")
	prefix := fs.String("topic-prefix", "", "the services' KAFKA_TOPIC_PREFIX, with --service (the dev stack on external Kafka: sagasuite-dev.)")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole command")
	var asJSON *bool
	if sub == "list" || sub == "show" {
		asJSON = fs.Bool("json", false, "one JSON object per dead letter and line, instead of text")
	}
	var partition, offset *int64
	var id *string
	if sub != "list" {
		partition = fs.Int64("partition", 0, "the dead letter's DLQ `partition` (with --offset)")
		offset = fs.Int64("offset", 0, "the dead letter's DLQ `offset` (with --partition)")
	}
	id = fs.String("id", "", "the event `id` (the id header)")
	var order, typ, since, until *string
	var all, apply, force *bool
	var reason *string
	if sub != "show" {
		order = fs.String("order", "", "only dead letters of this order `id` (the record key)")
		typ = fs.String("type", "", "only this event `type` (ORDER_CREATED …)")
		since = fs.String("since", "", "only dead-lettered at or after this `time` (RFC 3339)")
		until = fs.String("until", "", "only dead-lettered before this `time` (RFC 3339)")
	}
	if sub == "list" {
		all = fs.Bool("all", false, "also list redriven and dropped dead letters, with their resolution")
	}
	if sub == "redrive" || sub == "drop" {
		apply = fs.Bool("apply", false, "do it; without --apply nothing changes (dry run)")
		force = fs.Bool("force", false, "act on a dead letter already redriven or dropped (only with --partition/--offset or --id)")
		reason = fs.String("reason", "", "why, recorded in the audit (e.g. a ticket)")
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: sagactl dlq %s (--service NAME [--topic-prefix P] | --group GROUP) [flags]\n\n", sub)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return o, code, false
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fail := func(format string, a ...any) (dlqOptions, int, bool) {
		fmt.Fprintf(stderr, "sagactl dlq %s: %s\n", sub, fmt.Sprintf(format, a...))
		return o, exitError, false
	}

	var err error
	if o.brokers, err = hostPorts("brokers", *brokers); err != nil {
		return fail("%v", err)
	}
	switch {
	case *group != "" && *service != "":
		return fail("give --group or --service, not both")
	case *group != "":
		if set["topic-prefix"] {
			return fail("--topic-prefix goes with --service; --group is the full name, prefix included")
		}
		o.group = *group
	case *service != "":
		if !slices.Contains(suite.Services, *service) {
			return fail("--service %q is not one of %s", *service, strings.Join(suite.Services, ", "))
		}
		o.group = *prefix + *service
	default:
		return fail("--service or --group is required")
	}
	if *timeout <= 0 {
		return fail("--timeout must be positive")
	}
	o.timeout = *timeout
	if asJSON != nil {
		o.asJSON = *asJSON
	}
	o.filter.EventID = strings.TrimSpace(*id)
	if order != nil {
		o.filter.OrderID = strings.TrimSpace(*order)
		if *typ != "" {
			t, err := events.ParseType(*typ)
			if err != nil {
				return fail("--type: %v", err)
			}
			o.filter.Type = events.TypeName(t)
		}
		var err error
		if o.filter.Since, err = parseTimeFlag("since", *since); err != nil {
			return fail("%v", err)
		}
		if o.filter.Until, err = parseTimeFlag("until", *until); err != nil {
			return fail("%v", err)
		}
		if !o.filter.Since.IsZero() && !o.filter.Until.IsZero() && !o.filter.Since.Before(o.filter.Until) {
			return fail("--since must be before --until")
		}
	}
	if partition != nil {
		if set["partition"] != set["offset"] {
			return fail("--partition and --offset go together")
		}
		if o.hasPos = set["partition"]; o.hasPos {
			if *partition < 0 || *offset < 0 {
				return fail("--partition and --offset must not be negative")
			}
			if o.filter != (bus.DeadLetterFilter{}) {
				return fail("--partition/--offset name one dead letter: no --id or filters with them")
			}
			o.partition, o.offset = int(*partition), *offset
		}
	}
	if all != nil {
		o.filter.IncludeResolved = *all
	}
	byFilter := o.filter.OrderID != "" || o.filter.Type != "" || o.filter.EventID != "" ||
		!o.filter.Since.IsZero() || !o.filter.Until.IsZero()
	switch sub {
	case "show":
		if !o.hasPos && o.filter.EventID == "" {
			return fail("say which: --partition and --offset, or --id")
		}
	case "redrive", "drop":
		// Never everything by accident: the operator names what to act on.
		if !o.hasPos && !byFilter {
			return fail("say which dead letters: --partition and --offset, --id, or filters (--order, --type, --since, --until)")
		}
		o.apply, o.force, o.reason = *apply, *force, *reason
		if o.force && !o.hasPos && o.filter.EventID == "" {
			return fail("--force acts on one dead letter only: give --partition/--offset or --id")
		}
	}
	return o, 0, true
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q is not an RFC 3339 time (e.g. 2026-11-30T14:00:00Z)", name, v)
	}
	return t, nil
}

// operator names who acts, for the audit.
func operator() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		return "sagactl"
	}
	return "sagactl:" + name
}

// dlqError says what a library error means for the operator.
func dlqError(stderr io.Writer, sub string, q *bus.DeadLetterQueue, err error) int {
	// Only reads come here (actions report their own errors), so a missing
	// topic is the dead-letter topic itself.
	if errors.Is(err, bus.ErrTopicNotFound) {
		fmt.Fprintf(stderr, "sagactl dlq %s: dead-letter topic %s does not exist: no consumer of that group has run on this cluster (check --service/--topic-prefix or --group, and --brokers)\n", sub, q.Topic())
		return exitError
	}
	fmt.Fprintf(stderr, "sagactl dlq %s: %v\n", sub, err)
	return exitError
}

func dlqList(ctx context.Context, q *bus.DeadLetterQueue, o dlqOptions, stdout, stderr io.Writer) int {
	f := o.filter
	f.IncludeResolved = true // count the hidden ones
	found, err := q.List(ctx, f)
	if err != nil {
		return dlqError(stderr, "list", q, err)
	}
	var shown []bus.DeadLetter
	for _, d := range found {
		if o.filter.IncludeResolved || d.Resolution == nil {
			shown = append(shown, d)
		}
	}
	if o.asJSON {
		enc := json.NewEncoder(stdout)
		for _, d := range shown {
			if err := enc.Encode(viewOf(d, false)); err != nil {
				return dlqError(stderr, "list", q, err)
			}
		}
		return exitOK
	}
	if len(shown) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PARTITION/OFFSET\tDEAD-LETTERED\tTYPE\tORDER\tEVENT\tATTEMPTS\tSTATUS\tERROR")
		for _, d := range shown {
			fmt.Fprintf(tw, "%d/%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.Partition, d.Offset, d.At.UTC().Format(time.RFC3339),
				orDash(d.Type), orDash(d.OrderID), orDash(d.EventID), d.Attempts, status(d), oneLine(d.Error, 80))
		}
		tw.Flush()
	}
	fmt.Fprintf(stdout, "%d dead letters in %s", len(shown), q.Topic())
	if hidden := len(found) - len(shown); hidden > 0 {
		fmt.Fprintf(stdout, " (%d resolved not shown; --all lists them)", hidden)
	}
	fmt.Fprintln(stdout)
	return exitOK
}

func dlqShow(ctx context.Context, q *bus.DeadLetterQueue, o dlqOptions, stdout, stderr io.Writer) int {
	var found []bus.DeadLetter
	if o.hasPos {
		d, err := q.Get(ctx, o.partition, o.offset)
		if errors.Is(err, bus.ErrDeadLetterNotFound) {
			fmt.Fprintf(stderr, "sagactl dlq show: %v\n", err)
			return exitProblems
		}
		if err != nil {
			return dlqError(stderr, "show", q, err)
		}
		found = []bus.DeadLetter{d}
	} else {
		var err error
		found, err = q.FindEvent(ctx, o.filter.EventID)
		if errors.Is(err, bus.ErrDeadLetterNotFound) {
			fmt.Fprintf(stderr, "sagactl dlq show: %v\n", err)
			return exitProblems
		}
		if err != nil {
			return dlqError(stderr, "show", q, err)
		}
	}
	for i, d := range found {
		if o.asJSON {
			if err := json.NewEncoder(stdout).Encode(viewOf(d, true)); err != nil {
				return dlqError(stderr, "show", q, err)
			}
			continue
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printDeadLetter(stdout, d)
	}
	return exitOK
}

// dlqAct redrives or drops the selected dead letters, one audit line each.
func dlqAct(ctx context.Context, q *bus.DeadLetterQueue, o dlqOptions, sub string, stdout, stderr io.Writer) int {
	var targets []bus.DeadLetter
	switch {
	case o.hasPos:
		d, err := q.Get(ctx, o.partition, o.offset)
		if err != nil {
			return dlqError(stderr, sub, q, err)
		}
		targets = []bus.DeadLetter{d}
	default:
		f := o.filter
		f.IncludeResolved = o.force // only with --id (checked in parseDLQFlags)
		var err error
		if targets, err = q.List(ctx, f); err != nil {
			return dlqError(stderr, sub, q, err)
		}
	}
	if len(targets) == 0 {
		fmt.Fprintf(stderr, "sagactl dlq %s: no open dead letters in %s match; nothing to do\n", sub, q.Topic())
		return exitOK
	}
	act := q.Redrive
	verb := "redriven to their source topics"
	if sub == "drop" {
		act, verb = q.Drop, "dropped"
	}
	enc := json.NewEncoder(stdout)
	a := bus.DeadLetterAction{Apply: o.apply, Force: o.force, Reason: o.reason}
	for i, d := range targets {
		rec, err := act(ctx, d, a)
		if err != nil {
			fmt.Fprintf(stderr, "sagactl dlq %s: %v\n", sub, err)
			fmt.Fprintf(stderr, "sagactl dlq %s: stopped after %d of %d\n", sub, i, len(targets))
			return exitError
		}
		if err := enc.Encode(rec); err != nil {
			return dlqError(stderr, sub, q, err)
		}
	}
	if o.apply {
		fmt.Fprintf(stderr, "%d dead letters %s; recorded in %s\n", len(targets), verb, q.AuditTopic())
	} else {
		fmt.Fprintf(stderr, "dry run: %d dead letters would be %s; nothing changed (add --apply to do it)\n", len(targets), verb)
	}
	return exitOK
}

// dlqView is a dead letter as `--json` prints it.
type dlqView struct {
	Ref             string               `json:"ref"`
	Partition       int                  `json:"partition"`
	Offset          int64                `json:"offset"`
	DeadLetteredAt  time.Time            `json:"dead_lettered_at"`
	Type            string               `json:"type,omitempty"`
	OrderID         string               `json:"order_id,omitempty"`
	EventID         string               `json:"event_id,omitempty"`
	Key             string               `json:"key"`
	Group           string               `json:"group,omitempty"`
	SourceTopic     string               `json:"source_topic,omitempty"`
	SourcePartition int                  `json:"source_partition"`
	SourceOffset    int64                `json:"source_offset"`
	Attempts        int                  `json:"attempts"`
	Error           string               `json:"error"`
	Status          string               `json:"status"` // open, redriven, dropped
	Resolution      *bus.DeadLetterAudit `json:"resolution,omitempty"`
	DecodeError     string               `json:"decode_error,omitempty"`
	// With show only: every header, and the value as an envelope or raw bytes.
	Headers     map[string]string `json:"headers,omitempty"`
	Envelope    json.RawMessage   `json:"envelope,omitempty"`
	ValueBase64 string            `json:"value_base64,omitempty"`
}

func viewOf(d bus.DeadLetter, full bool) dlqView {
	v := dlqView{
		Ref: d.Ref(), Partition: d.Partition, Offset: d.Offset, DeadLetteredAt: d.At.UTC(),
		Type: d.Type, OrderID: d.OrderID, EventID: d.EventID, Key: d.Key, Group: d.Group,
		SourceTopic: d.SourceTopic, SourcePartition: d.SourcePartition, SourceOffset: d.SourceOffset,
		Attempts: d.Attempts, Error: d.Error, Status: statusWord(d), Resolution: d.Resolution, DecodeError: d.DecodeError,
	}
	if full {
		v.Headers = d.Headers
		if d.Envelope != nil {
			if b, err := protojson.Marshal(d.Envelope); err == nil {
				v.Envelope = b
			}
		}
		if v.Envelope == nil {
			v.ValueBase64 = base64.StdEncoding.EncodeToString(d.Value)
		}
	}
	return v
}

func printDeadLetter(w io.Writer, d bus.DeadLetter) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "dead letter\t%s\n", d.Ref())
	fmt.Fprintf(tw, "status\t%s\n", status(d))
	fmt.Fprintf(tw, "dead-lettered\t%s\n", d.At.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "group\t%s\n", orDash(d.Group))
	fmt.Fprintf(tw, "source\t%s/%d/%d\n", orDash(d.SourceTopic), d.SourcePartition, d.SourceOffset)
	fmt.Fprintf(tw, "attempts\t%d\n", d.Attempts)
	fmt.Fprintf(tw, "key\t%s\n", d.Key)
	tw.Flush()
	fmt.Fprintf(w, "error:\n  %s\n", strings.ReplaceAll(strings.TrimRight(d.Error, "\n"), "\n", "\n  "))
	fmt.Fprintln(w, "headers:")
	keys := make([]string, 0, len(d.Headers))
	for k := range d.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%s\n", k, oneLine(d.Headers[k], 200))
	}
	tw.Flush()
	if d.Envelope == nil {
		fmt.Fprintf(w, "envelope: does not decode: %s\nvalue (%d bytes, base64):\n  %s\n", d.DecodeError, len(d.Value), base64.StdEncoding.EncodeToString(d.Value))
		return
	}
	b, err := protojson.Marshal(d.Envelope)
	var out bytes.Buffer
	if err == nil {
		// protojson varies its whitespace on purpose; json.Indent makes it stable.
		err = json.Indent(&out, b, "", "  ")
	}
	if err != nil {
		fmt.Fprintf(w, "envelope: %v\n", err)
		return
	}
	fmt.Fprintf(w, "envelope:\n%s\n", out.Bytes())
}

func statusWord(d bus.DeadLetter) string {
	if d.Resolution == nil {
		return "open"
	}
	if d.Resolution.Action == bus.DeadLetterRedrive {
		return "redriven"
	}
	return "dropped"
}

func status(d bus.DeadLetter) string {
	s := statusWord(d)
	if r := d.Resolution; r != nil {
		s += " " + r.At.UTC().Format(time.RFC3339)
		if r.By != "" {
			s += " by " + r.By
		}
		if r.Reason != "" {
			s += " (" + oneLine(r.Reason, 40) + ")"
		}
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps the first line of s, at most n runes (errors can carry stacks).
func oneLine(s string, n int) string {
	s, _, cut := strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		s, cut = string(r[:n]), true
	}
	if cut {
		s += "…"
	}
	return s
}
