package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// Bad usage is refused before anything connects (--brokers points nowhere).
func TestDLQUsage(t *testing.T) {
	nowhere := []string{"--brokers", "127.0.0.1:1"}
	cases := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"no command", []string{"dlq"}, exitError, "usage: sagactl dlq <list|show|redrive|drop>"},
		{"help", []string{"dlq", "help"}, exitOK, "DRY RUNS unless --apply"},
		{"unknown command", []string{"dlq", "purge"}, exitError, `unknown command "purge"`},
		{"list help", []string{"dlq", "list", "-h"}, exitOK, "-since"},
		{"no group", []string{"dlq", "list"}, exitError, "--service or --group is required"},
		{"group and service", []string{"dlq", "list", "--group", "g", "--service", "order"}, exitError, "not both"},
		{"prefix with group", []string{"dlq", "list", "--group", "g", "--topic-prefix", "p."}, exitError, "--topic-prefix goes with --service"},
		{"unknown service", []string{"dlq", "list", "--service", "billing"}, exitError, `--service "billing" is not one of order, inventory`},
		{"bad broker", []string{"dlq", "list", "--service", "order", "--brokers", "localhost"}, exitError, `"localhost" is not host:port`},
		{"bad type", []string{"dlq", "list", "--service", "order", "--type", "ORDER_LOST"}, exitError, `unknown event type "ORDER_LOST"`},
		{"bad since", []string{"dlq", "list", "--service", "order", "--since", "yesterday"}, exitError, `--since "yesterday" is not an RFC 3339 time`},
		{"since after until", []string{"dlq", "list", "--service", "order", "--since", "2026-11-30T12:00:00Z", "--until", "2026-11-30T11:00:00Z"}, exitError, "--since must be before --until"},
		{"zero timeout", []string{"dlq", "list", "--service", "order", "--timeout", "0s"}, exitError, "--timeout must be positive"},
		{"list has no offset", []string{"dlq", "list", "--service", "order", "--offset", "3"}, exitError, "flag provided but not defined: -offset"},
		{"stray argument", []string{"dlq", "list", "--service", "order", "extra"}, exitError, `unexpected arguments ["extra"]`},
		{"show without selector", []string{"dlq", "show", "--service", "order"}, exitError, "--partition and --offset, or --id"},
		{"show offset alone", []string{"dlq", "show", "--service", "order", "--offset", "3"}, exitError, "--partition and --offset go together"},
		{"show negative", []string{"dlq", "show", "--service", "order", "--partition", "0", "--offset", "-2"}, exitError, "must not be negative"},
		{"show position and id", []string{"dlq", "show", "--service", "order", "--partition", "0", "--offset", "2", "--id", "x"}, exitError, "no --id or filters with them"},
		{"redrive everything", []string{"dlq", "redrive", "--service", "order", "--apply"}, exitError, "say which dead letters"},
		{"drop position and filter", []string{"dlq", "drop", "--service", "order", "--partition", "0", "--offset", "1", "--type", "ORDER_CREATED"}, exitError, "no --id or filters with them"},
		{"force in bulk", []string{"dlq", "redrive", "--service", "order", "--type", "ORDER_CREATED", "--force"}, exitError, "--force acts on one dead letter only"},
		{"redrive has no json", []string{"dlq", "redrive", "--service", "order", "--id", "x", "--json"}, exitError, "flag provided but not defined: -json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if len(args) > 2 { // before the case's own flags, so a case's --brokers wins
				args = append(append(append([]string{}, args[:2]...), nowhere...), args[2:]...)
			}
			code, _, stderr := sagactl(t, args...)
			if code != tc.code || !strings.Contains(stderr, tc.inStderr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, tc.code, tc.inStderr)
			}
		})
	}
}

// The four commands on the real Kafka of the local stack, against a DLQ
// written as a Consumer writes it (the consumer itself is tested in libs/bus).
func TestDLQCommandsOnKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := testenv.Brokers()
	prefix := testenv.UniqueName("test.sagactl.dlq.") + "."
	source := prefix + "orders.v1"
	dlqTopic := bus.DeadLetterTopic(prefix + "inventory")
	if err := bus.EnsureTopics(ctx, brokers, bus.TopicSpec{Name: source, Partitions: 1, ReplicationFactor: 1},
		bus.TopicSpec{Name: dlqTopic, Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatalf("Kafka for tests (SAGASUITE_KAFKA_BROKERS; run `make infra-up`): %v", err)
	}
	env, err := events.New(events.Meta{OrderID: events.NewID(), CustomerID: events.NewID(), Producer: "order",
		CausationID: testenv.IDFor("sagactl-dlq-" + prefix), OccurredAt: time.Now()}, &eventsv1.OrderCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	typeName := events.TypeName(env.GetType())
	valid, err := bus.EncodeEnvelope(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	dead := func(m bus.Message, offset int, reason string) bus.Message {
		h := map[string]string{"dlq-error": reason, "dlq-topic": source, "dlq-partition": "0",
			"dlq-offset": strconv.Itoa(offset), "dlq-group": prefix + "inventory", "dlq-attempts": "1",
			"dlq-at": time.Now().UTC().Format(time.RFC3339Nano)}
		for k, v := range m.Headers {
			h[k] = v
		}
		return bus.Message{Topic: dlqTopic, Key: m.Key, Headers: h, Value: m.Value}
	}
	valid.Headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	producer := bus.NewProducer(brokers)
	defer producer.Close()
	if err := producer.Publish(ctx,
		dead(valid, 0, "permanent failure: no such SKU"),
		dead(bus.Message{Key: "junk-key", Value: []byte("not protobuf"), Headers: map[string]string{}}, 1, "invalid event: decode envelope\nsecond line")); err != nil {
		t.Fatal(err)
	}

	base := []string{"--service", "inventory", "--topic-prefix", prefix, "--brokers", strings.Join(brokers, ",")}
	dlq := func(sub string, extra ...string) (int, string, string) {
		t.Helper()
		return sagactl(t, append(append([]string{"dlq", sub}, base...), extra...)...)
	}

	code, out, stderr := dlq("list")
	if code != exitOK || !strings.Contains(out, "2 dead letters in "+dlqTopic) ||
		!strings.Contains(out, "0/0") || !strings.Contains(out, typeName) || !strings.Contains(out, env.GetOrderId()) ||
		!strings.Contains(out, "permanent failure: no such SKU") || !strings.Contains(out, "invalid event: decode envelope…") ||
		strings.Contains(out, "second line") {
		t.Fatalf("list: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = dlq("list", "--json", "--type", typeName)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var v dlqView
	if code != exitOK || len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &v) != nil ||
		v.EventID != env.GetEventId() || v.Status != "open" || v.SourceTopic != source || v.Ref != dlqTopic+"/0/0" {
		t.Fatalf("list --json --type: exit %d\n%s", code, out)
	}

	code, out, _ = dlq("show", "--partition", "0", "--offset", "0")
	if code != exitOK || !strings.Contains(out, "traceparent") || !strings.Contains(out, `"eventId": "`+env.GetEventId()+`"`) ||
		!strings.Contains(out, "status         open") {
		t.Fatalf("show: exit %d\n%s", code, out)
	}
	code, out, _ = dlq("show", "--partition", "0", "--offset", "1", "--json")
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || v.DecodeError == "" || v.ValueBase64 != "bm90IHByb3RvYnVm" {
		t.Fatalf("show --json of the undecodable one: exit %d\n%s", code, out)
	}
	if code, _, stderr = dlq("show", "--id", "no-such-event"); code != exitProblems || !strings.Contains(stderr, "no event no-such-event") {
		t.Fatalf("show of a missing id: exit %d\n%s", code, stderr)
	}

	// Redrive by order: a dry run first.
	code, out, stderr = dlq("redrive", "--order", env.GetOrderId())
	var rec bus.DeadLetterAudit
	if code != exitOK || json.Unmarshal([]byte(out), &rec) != nil || rec.Applied || rec.RedrivenTo != source ||
		!strings.Contains(stderr, "dry run: 1 dead letters would be redriven") {
		t.Fatalf("redrive dry run: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ = dlq("list"); !strings.Contains(out, "2 dead letters") {
		t.Fatalf("after the dry run:\n%s", out)
	}
	code, out, stderr = dlq("redrive", "--order", env.GetOrderId(), "--apply", "--reason", "SKU added")
	if code != exitOK || json.Unmarshal([]byte(out), &rec) != nil || !rec.Applied || rec.Reason != "SKU added" ||
		!strings.Contains(stderr, "recorded in "+dlqTopic+".audit") {
		t.Fatalf("redrive --apply: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = dlq("drop", "--partition", "0", "--offset", "1", "--apply")
	if code != exitOK || json.Unmarshal([]byte(out), &rec) != nil || rec.Action != "drop" || !rec.Applied {
		t.Fatalf("drop: exit %d\n%s%s", code, out, stderr)
	}
	if code, _, stderr = dlq("drop", "--partition", "0", "--offset", "1", "--apply"); code != exitError || !strings.Contains(stderr, "already resolved") {
		t.Fatalf("second drop: exit %d\n%s", code, stderr)
	}
	if code, _, stderr = dlq("redrive", "--type", typeName); code != exitOK || !strings.Contains(stderr, "no open dead letters") {
		t.Fatalf("redrive with nothing open: exit %d\n%s", code, stderr)
	}

	code, out, _ = dlq("list")
	if code != exitOK || !strings.Contains(out, "0 dead letters in "+dlqTopic+" (2 resolved not shown; --all lists them)") {
		t.Fatalf("list after resolving:\n%s", out)
	}
	code, out, _ = dlq("list", "--all")
	t.Logf("sagactl dlq list --all:\n%s", out)
	if code != exitOK || !strings.Contains(out, "redriven 20") || !strings.Contains(out, "(SKU added)") || !strings.Contains(out, "dropped 20") {
		t.Fatalf("list --all:\n%s", out)
	}
}
