package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/services/notification"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
)

// Defaults of sagactl rebuild when neither a flag nor the notification
// service's variable says otherwise: the local real stack (make infra-up).
const (
	defaultRebuildBrokers   = "127.0.0.1:19092"
	defaultRebuildCassandra = "127.0.0.1:19042"
)

func rebuildUsage(w io.Writer) {
	fmt.Fprintln(w, `usage: sagactl rebuild notification [--brokers B] [--topic-prefix P] [--from X] [--to Y]
                              [--cassandra HOSTS] [--live-keyspace K] [--keyspace NEW] [--compare=false]

Rebuilds the notification service's read model (saga_log_by_order, notifications_by_customer,
saga_event_times) from the saga topics into an EMPTY Cassandra keyspace, then compares it with
the live model row by row and exits 1 when they differ.

Every record goes through the live consumer's own handler in replay mode: the same rows are
written, but no customer is told again (the Sender is not called, nothing is published) and
each notification is marked delivered at its record's time, so a rebuilt model put in service
does not resend either. Kafka is read with assigned partitions, no consumer group and nothing
committed, up to the end offsets read when each partition's scan starts. Events the live
consumer dead-letters are skipped and counted. Progress goes to stderr, the comparison to stdout.

A rebuild covers only what Kafka still holds: records older than the topics' retention are gone,
and so are the rows they made (see README "Rebuild a read model"). Compare while the live
consumer is caught up; a suite taking orders meanwhile shows its newest rows as missing.

Settings not given as flags come from the notification service's own variables
(NOTIFICATION_KAFKA_BROKERS, NOTIFICATION_KAFKA_TOPIC_PREFIX, NOTIFICATION_KAFKA_TLS_*/SASL_*,
NOTIFICATION_CASSANDRA_HOSTS, _KEYSPACE, _USERNAME, _PASSWORD(_FILE), _TLS_*, _CONSISTENCY,
_REPLICATION), else the local real stack (Kafka 127.0.0.1:19092, Cassandra 127.0.0.1:19042,
keyspace "notification").

Example (the dev stack on the local real stack, make run DEV_FLAGS="--kafka 127.0.0.1:19092 --cassandra 127.0.0.1:19042 …"):
  sagactl rebuild notification --topic-prefix sagasuite-dev. --live-keyspace sagasuite_dev_notification
  sagactl rebuild notification --topic-prefix sagasuite-dev. --live-keyspace sagasuite_dev_notification \
      --keyspace notif_rebuild_1 --from 2026-11-30T12:00:00Z

Exit status: 0 rebuilt and equal to the live model (or --compare=false), 1 they differ,
2 bad usage, a non-empty target keyspace, or a Kafka/Cassandra error.`)
}

// rebuildOptions are the parsed, checked flags of sagactl rebuild notification.
type rebuildOptions struct {
	cfg          notification.Config // Cassandra and Kafka settings; CassandraKeyspace is the target
	liveKeyspace string
	scan         bus.ScanRange
	compare      bool
	quiet        bool
	timeout      time.Duration
	sec          bus.Security
}

func runRebuild(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		rebuildUsage(stderr)
		if len(args) == 0 {
			return exitError
		}
		return exitOK
	}
	if args[0] != "notification" {
		fmt.Fprintf(stderr, "sagactl rebuild: %q has no rebuildable read model here (only notification)\n\n", args[0])
		rebuildUsage(stderr)
		return exitError
	}
	o, code, ok := parseRebuildFlags(args[1:], os.Environ(), time.Now(), stderr)
	if !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	return rebuildNotification(ctx, o, stdout, stderr)
}

func parseRebuildFlags(args, environ []string, now time.Time, stderr io.Writer) (o rebuildOptions, code int, ok bool) {
	fs := flag.NewFlagSet("sagactl rebuild notification", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap `brokers` (default: $NOTIFICATION_KAFKA_BROKERS, else "+defaultRebuildBrokers+")")
	prefix := fs.String("topic-prefix", "", "the suite's topic `prefix` (default: $NOTIFICATION_KAFKA_TOPIC_PREFIX)")
	from := fs.String("from", "", "first record: an RFC 3339 `time` or an offset (default: each partition's first still retained)")
	to := fs.String("to", "", "end, exclusive: an RFC 3339 `time` or an offset (default: each partition's end when its scan starts)")
	hosts := fs.String("cassandra", "", "comma-separated Cassandra contact `points` host:port (default: $NOTIFICATION_CASSANDRA_HOSTS, else "+defaultRebuildCassandra+")")
	live := fs.String("live-keyspace", "", "the live model's `keyspace` (default: $NOTIFICATION_CASSANDRA_KEYSPACE, else notification)")
	target := fs.String("keyspace", "", "the `keyspace` to rebuild into; must not exist or hold no rows (default: <live>_rebuild_<UTC timestamp>)")
	compare := fs.Bool("compare", true, "compare the rebuilt model with the live one (exit 1 on difference)")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	timeout := fs.Duration("timeout", 30*time.Minute, "bound on the whole command")
	fs.Usage = func() {
		rebuildUsage(stderr)
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return o, code, false
	}
	fail := func(format string, a ...any) (rebuildOptions, int, bool) {
		fmt.Fprintf(stderr, "sagactl rebuild notification: %s\n", fmt.Sprintf(format, a...))
		return o, exitError, false
	}
	if *timeout <= 0 {
		return fail("--timeout must be positive")
	}
	o.timeout, o.quiet, o.compare = *timeout, *quiet, *compare

	// The service's own variables, with the local stack's defaults for the
	// two it requires, so its Cassandra/Kafka security settings apply as is.
	env := append([]string(nil), environ...)
	if !hasVar(environ, "NOTIFICATION_KAFKA_BROKERS") {
		env = append(env, "NOTIFICATION_KAFKA_BROKERS="+defaultRebuildBrokers)
	}
	if !hasVar(environ, "NOTIFICATION_CASSANDRA_HOSTS") {
		env = append(env, "NOTIFICATION_CASSANDRA_HOSTS="+defaultRebuildCassandra)
	}
	cfg, err := config.LoadFrom[notification.Config]("NOTIFICATION", env)
	if err != nil {
		return fail("the notification service's settings: %v", err)
	}
	if *brokers != "" {
		if cfg.Brokers, err = hostPorts("brokers", *brokers); err != nil {
			return fail("%v", err)
		}
	}
	if *prefix != "" {
		cfg.TopicPrefix = *prefix
	}
	if *hosts != "" {
		if cfg.CassandraHosts, err = hostPorts("cassandra", *hosts); err != nil {
			return fail("%v", err)
		}
	}
	o.liveKeyspace = cfg.CassandraKeyspace
	if *live != "" {
		o.liveKeyspace = *live
	}
	if *target != "" {
		cfg.CassandraKeyspace = *target
	} else {
		// Keyspace names are at most 48 characters.
		suffix := "_rebuild_" + now.UTC().Format("20060102150405")
		cfg.CassandraKeyspace = o.liveKeyspace[:min(len(o.liveKeyspace), 48-len(suffix))] + suffix
	}
	if cfg.CassandraKeyspace == o.liveKeyspace {
		return fail("--keyspace %s is the live keyspace; rebuild into a new one", cfg.CassandraKeyspace)
	}
	check := cfg
	check.CassandraKeyspace = o.liveKeyspace
	if err := check.Validate(); err != nil {
		return fail("--live-keyspace: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		return fail("%v", err)
	}
	if o.scan, err = scanRange(*from, *to); err != nil {
		return fail("%v", err)
	}
	if o.sec, err = cfg.Security(); err != nil {
		return fail("Kafka security: %v", err)
	}
	o.cfg = cfg
	return o, 0, true
}

func hasVar(environ []string, name string) bool {
	for _, kv := range environ {
		if k, v, _ := strings.Cut(kv, "="); k == name && v != "" {
			return true
		}
	}
	return false
}

func rebuildNotification(ctx context.Context, o rebuildOptions, stdout, stderr io.Writer) int {
	progress := func(format string, a ...any) {
		if !o.quiet {
			fmt.Fprintf(stderr, "rebuild: "+format+"\n", a...)
		}
	}
	started := time.Now()
	// A Sender call would log at DEBUG here: replay mode is what keeps it
	// silent, and stderr would show it if it did not.
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := notification.OpenRebuild(ctx, o.cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl rebuild notification: %v\n", err)
		return exitError
	}
	defer r.Close()
	progress("into keyspace %s on %v, from topics %s* on %v", o.cfg.CassandraKeyspace, o.cfg.CassandraHosts, o.cfg.TopicPrefix, o.cfg.Brokers)

	var applied, skipped int
	apply := func(rec capture.Record) error {
		env, err := rec.Event()
		if err != nil {
			// Not an envelope: the live consumer dead-letters it too.
			skipped++
			progress("skipped %s/%d@%d: %v", rec.Topic, rec.Partition, rec.Offset, err)
			return nil
		}
		if err := r.Apply(ctx, env, rec.Time()); err != nil {
			if errors.Is(err, notification.ErrUnprocessable) {
				skipped++
				progress("skipped %s/%d@%d: %v", rec.Topic, rec.Partition, rec.Offset, err)
				return nil
			}
			return fmt.Errorf("%s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
		}
		applied++
		if applied%1000 == 0 {
			progress("%d events applied (%s)", applied, time.Since(started).Round(time.Millisecond))
		}
		return nil
	}
	ranges, err := capture.Scan(ctx, capture.Source{Brokers: o.cfg.Brokers, Security: o.sec, Prefix: o.cfg.TopicPrefix,
		Topics: events.AllTopics, Range: o.scan}, apply, func(rg capture.Range, kept int) {
		progress("%s/%d offsets %d–%d: %d records (total applied %d, skipped %d)", rg.Topic, rg.Partition, rg.Start, rg.End, kept, applied, skipped)
	})
	if err != nil {
		fmt.Fprintf(stderr, "sagactl rebuild notification: %v (keyspace %s holds what was applied so far)\n", err, o.cfg.CassandraKeyspace)
		return exitError
	}
	took := time.Since(started)
	progress("done: %d events applied, %d skipped, %d partitions, in %s (%.0f events/s); the rebuilt model is keyspace %s",
		applied, skipped, len(ranges), took.Round(time.Millisecond), float64(applied)/max(took.Seconds(), 1e-3), o.cfg.CassandraKeyspace)
	if !o.compare {
		return exitOK
	}

	rebuilt, err := r.Model(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl rebuild notification: read the rebuilt model: %v\n", err)
		return exitError
	}
	liveCfg := o.cfg
	liveCfg.CassandraKeyspace = o.liveKeyspace
	live, err := notification.ReadModel(ctx, liveCfg)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl rebuild notification: read the live model: %v\n", err)
		return exitError
	}
	diffs := notification.Compare(live, rebuilt)
	for _, d := range diffs {
		fmt.Fprintln(stdout, d)
	}
	summary := fmt.Sprintf("live %s: %d saga log rows, %d notifications, %d event times; rebuilt %s: %d, %d, %d",
		o.liveKeyspace, len(live.SagaLog), len(live.Notifications), len(live.EventTimes),
		o.cfg.CassandraKeyspace, len(rebuilt.SagaLog), len(rebuilt.Notifications), len(rebuilt.EventTimes))
	if len(diffs) > 0 {
		fmt.Fprintf(stdout, "DIFFERENT: %d rows differ (missing = live only, extra = rebuilt only); %s\n", len(diffs), summary)
		return exitProblems
	}
	fmt.Fprintf(stdout, "EQUAL: %s\n", summary)
	return exitOK
}
