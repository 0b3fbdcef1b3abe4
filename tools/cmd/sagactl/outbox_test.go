package main

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// listenLoopback listens on a loopback port below Linux's ephemeral range.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	for i := 0; i < 200; i++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+rand.IntN(12000))))
		if err == nil {
			return ln
		}
	}
	t.Fatal("no free loopback port in [20000, 32000) after 200 tries")
	return nil
}

// A row to a topic that does not exist is parked by a real relay on MariaDB;
// `sagactl outbox list` shows it through the admin API, and `retry` (after
// the topic is created) gets it published.
func TestOutboxListAndRetryThroughTheOpsAPI(t *testing.T) {
	ctx := context.Background()
	db, _ := testenv.MySQLDatabase(t)
	if err := sqlstore.MigrateMessaging(ctx, db); err != nil {
		t.Fatal(err)
	}
	producer := bus.NewProducer(testenv.Brokers())
	t.Cleanup(func() { producer.Close() })
	relay := outbox.NewRelay(db, producer, outbox.RelayConfig{PollInterval: 5 * time.Millisecond, MaxAttempts: 1})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	ln := listenLoopback(t)
	srv := &http.Server{Handler: service.OutboxAdminHandler("order", relay), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	ops := ln.Addr().String()

	topic := testenv.UniqueName("test.sagactl.outbox.")
	env, err := events.New(events.Meta{OrderID: events.NewID(), CustomerID: events.NewID(), Producer: "test", CausationID: events.NewID(), OccurredAt: time.Now()},
		&eventsv1.OrderCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := bus.EncodeEnvelope(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	msg.Topic = topic
	if err := sqlstore.InTx(ctx, db, func(tx *sql.Tx) error { return outbox.Add(ctx, tx, time.Now(), msg) }); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the row parked", func() bool { n, err := relay.Parked(ctx); return err == nil && n == 1 })

	code, out, errOut := sagactl(t, "outbox", "list", "--service", "order", "--ops", ops)
	if code != exitOK || !strings.Contains(out, topic) || !strings.Contains(out, "ORDER_COMPLETED") || !strings.Contains(out, "Unknown Topic") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = sagactl(t, "outbox", "list", "--service", "order", "--ops", ops, "--json")
	if code != exitOK || !strings.Contains(out, `"event_id": "`+env.GetEventId()+`"`) {
		t.Fatalf("list --json: exit %d\n%s", code, out)
	}
	if code, _, errOut := sagactl(t, "outbox", "retry", "--service", "order", "--ops", ops, "--id", "424242"); code != exitError || !strings.Contains(errOut, "no parked outbox row") {
		t.Fatalf("retry of an unknown id: exit %d, %s", code, errOut)
	}

	if err := bus.EnsureTopics(ctx, testenv.Brokers(), bus.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	// The producer caches topic metadata briefly: wait until it sees the topic.
	waitUntil(t, "the producer to see the new topic", func() bool {
		probe := msg
		probe.Headers = map[string]string{bus.HeaderEventID: events.NewID()}
		return producer.Publish(ctx, probe) == nil
	})
	code, out, errOut = sagactl(t, "outbox", "retry", "--service", "order", "--ops", ops, "--all")
	if code != exitOK || !strings.Contains(out, "1 parked rows un-parked") {
		t.Fatalf("retry --all: exit %d\n%s%s", code, out, errOut)
	}
	waitUntil(t, "the retried row published", func() bool {
		var sent sql.NullTime
		err := db.QueryRow("SELECT sent_at FROM outbox WHERE event_id = ?", env.GetEventId()).Scan(&sent)
		return err == nil && sent.Valid
	})
}

func TestOutboxUsage(t *testing.T) {
	cases := []struct {
		args     []string
		inStderr string
	}{
		{[]string{"outbox"}, "usage: sagactl outbox list"},
		{[]string{"outbox", "frob"}, `unknown subcommand "frob"`},
		{[]string{"outbox", "list"}, "--service is required"},
		{[]string{"outbox", "list", "--service", "notification"}, `"notification" has no outbox`},
		{[]string{"outbox", "list", "--service", "order", "--limit", "0"}, "--limit must be 1–1000"},
		{[]string{"outbox", "retry", "--service", "order"}, "either --id ID or --all"},
		{[]string{"outbox", "retry", "--service", "order", "--id", "1", "--all"}, "either --id ID or --all"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := sagactl(t, tc.args...)
			if code != exitError || !strings.Contains(stderr, tc.inStderr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, exitError, tc.inStderr)
			}
		})
	}
}

// A service that is not running: a clear error naming the service.
func TestOutboxListWithTheServiceDown(t *testing.T) {
	ln := listenLoopback(t)
	addr := ln.Addr().String()
	ln.Close()
	code, _, stderr := sagactl(t, "outbox", "list", "--service", "payment", "--ops", addr, "--timeout", "5s")
	if code != exitError || !strings.Contains(stderr, "payment ops API") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
