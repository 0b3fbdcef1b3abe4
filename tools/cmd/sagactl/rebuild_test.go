package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/notification"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
)

// rebuildBound bounds waits for the service, Kafka and Cassandra: a bound
// for a hang, not a speed requirement.
const rebuildBound = 3 * time.Minute

// rebuildSagas are two orders' events: one completed, one cancelled out of
// stock (four customer-facing events in all).
func rebuildSagas(t *testing.T) []*eventsv1.Envelope {
	t.Helper()
	lines := []*commonv1.LineItem{{Sku: "SKU-1", Quantity: 2, UnitPriceMinor: 1250}}
	total := &commonv1.Money{AmountMinor: 2500, Currency: "EUR"}
	address := &commonv1.Address{Name: "Ada Lovelace", Line1: "1 Analytical Way", City: "London", PostalCode: "N1", CountryCode: "GB"}
	created := func() proto.Message {
		return &eventsv1.OrderCreated{Lines: lines, Total: total, ShippingAddress: address, PaymentMethodToken: "tok_visa",
			Deadline: timestamppb.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}
	}
	id := func(name string) string { return testenv.IDFor(t.Name() + "/" + name) }
	type step struct {
		producer string
		payload  proto.Message
	}
	sagas := map[string][]step{
		"completed": {
			{"order", created()},
			{"inventory", &eventsv1.StockReserved{ReservationId: id("reservation"), Lines: lines, Total: total, PaymentMethodToken: "tok_visa", ShippingAddress: address}},
			{"payment", &eventsv1.PaymentProcessed{PaymentId: id("payment"), Amount: total}},
			{"inventory", &eventsv1.InventoryUpdated{ReservationId: id("reservation"), Lines: lines, ShippingAddress: address}},
			{"shipping", &eventsv1.ShipmentCreated{ShipmentId: id("shipment"), Carrier: "dhl", TrackingNumber: "JD0001"}},
			{"order", &eventsv1.OrderCompleted{}},
		},
		"out-of-stock": {
			{"order", created()},
			{"inventory", &eventsv1.OutOfStock{Sku: "SKU-1", Requested: 2, Available: 1, Reason: eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_INSUFFICIENT_STOCK}},
			{"order", &eventsv1.OrderCancelled{Reason: eventsv1.CancelReason_CANCEL_REASON_OUT_OF_STOCK}},
		},
	}
	var out []*eventsv1.Envelope
	start := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for _, name := range []string{"completed", "out-of-stock"} {
		orderID, customerID := id("order/"+name), id("customer/"+name)
		cause := id("command/" + name)
		for i, s := range sagas[name] {
			env, err := events.New(events.Meta{OrderID: orderID, CustomerID: customerID, Producer: s.producer,
				CausationID: cause, OccurredAt: start.Add(time.Duration(i) * time.Second)}, s.payload)
			if err != nil {
				t.Fatalf("build %s event %d: %v", name, i, err)
			}
			out = append(out, env)
			cause = env.GetEventId()
		}
	}
	return out
}

// The live notification service consumes two sagas from unique topics into a
// fresh keyspace; `sagactl rebuild notification` reads the topics back into an
// empty keyspace: equal to the live model, nobody told again, nothing
// published. A live row deleted afterwards is reported (exit 1), and a
// non-empty target is refused (exit 2).
func TestRebuildNotification(t *testing.T) {
	prefix := testenv.UniqueName("rebuild-") + "."
	liveKS, target, target2 := testenv.UniqueName("rb_live_"), testenv.UniqueName("rb_new_"), testenv.UniqueName("rb_new2_")
	hosts := testenv.CassandraHosts()
	cluster := gocql.NewCluster(strings.Split(hosts, ",")...)
	cluster.Consistency, cluster.Timeout, cluster.ConnectTimeout = gocql.One, 30*time.Second, 10*time.Second
	session, err := cluster.CreateSession()
	if err != nil {
		t.Fatalf("Cassandra at %s (run `make infra-up`): %v", hosts, err)
	}
	t.Cleanup(func() {
		defer session.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, ks := range []string{liveKS, target, target2} {
			if err := session.Query("DROP KEYSPACE IF EXISTS " + ks).ExecContext(ctx); err != nil {
				t.Errorf("drop keyspace %s: %v", ks, err)
			}
		}
	})

	cfg := notification.Config{
		Common: config.Common{GRPCAddr: "127.0.0.1:0", OpsAddr: "127.0.0.1:0", LogLevel: config.LevelInfo,
			LogFormat: config.FormatJSON, ShutdownTimeout: 5 * time.Second},
		KafkaConfig:    servicetest.SagaTopics(t, service.KafkaConfig{Brokers: testenv.Brokers(), TopicPrefix: prefix, Partitions: 2, ReplicationFactor: 1}),
		CassandraHosts: strings.Split(hosts, ","), CassandraKeyspace: liveKS,
		CassandraReplication: "{'class':'SimpleStrategy','replication_factor':1}",
		CassandraConsistency: "LOCAL_QUORUM", CassandraTimeout: 30 * time.Second,
	}
	liveLogs := &testenv.SyncBuffer{}
	rt := service.Runtime{
		Clock:           clock.NewManual(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)),
		Logger:          slog.New(slog.NewJSONHandler(liveLogs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SharedTelemetry: true, Registry: prometheus.NewRegistry(),
	}
	servicetest.Start(t, rt, func(ctx context.Context, rt service.Runtime) error { return notification.Run(ctx, cfg, rt) })

	ctx, cancel := context.WithTimeout(context.Background(), rebuildBound)
	defer cancel()
	envs := rebuildSagas(t)
	producer := bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(prefix))
	defer producer.Close()
	for _, env := range envs {
		msg, err := bus.EncodeEnvelope(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		if err := producer.Publish(ctx, msg); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	const told = 4 // two ORDER_CREATED, ORDER_COMPLETED, ORDER_CANCELLED
	var live notification.Model
	for {
		live, err = notification.ReadModel(ctx, cfg)
		delivered := 0
		for _, n := range live.Notifications {
			if n.Delivered {
				delivered++
			}
		}
		if err == nil && len(live.SagaLog) == len(envs) && delivered == told {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("live model not complete within %s: %d of %d log rows, %d of %d delivered (last error %v)",
				rebuildBound, len(live.SagaLog), len(envs), delivered, told, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	liveSends := strings.Count(liveLogs.String(), `"msg":"notification sent"`)
	if liveSends != told {
		t.Fatalf("live service sent %d notifications, want %d", liveSends, told)
	}

	rebuild := func(keyspace string) (code int, stdout, stderr string) {
		var out, errOut bytes.Buffer
		code = run(ctx, []string{"rebuild", "notification", "--brokers", strings.Join(testenv.Brokers(), ","),
			"--topic-prefix", prefix, "--cassandra", hosts, "--live-keyspace", liveKS, "--keyspace", keyspace}, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	published := func() int {
		n := 0
		if _, err := capture.Scan(ctx, capture.Source{Brokers: testenv.Brokers(), Prefix: prefix, Topics: []string{events.TopicNotifications},
			Range: bus.ScanRange{From: -1, To: -1}}, func(capture.Record) error { n++; return nil }, nil); err != nil {
			t.Fatalf("scan %s%s: %v", prefix, events.TopicNotifications, err)
		}
		return n
	}
	before := published()

	code, stdout, stderr := rebuild(target)
	if code != exitOK || !strings.Contains(stdout, "EQUAL") {
		t.Fatalf("rebuild into empty %s: exit %d\nstdout:\n%s\nstderr:\n%s", target, code, stdout, stderr)
	}
	if !strings.Contains(stderr, "rebuild: done: 9 events applied, 0 skipped") {
		t.Fatalf("no progress summary on stderr:\n%s", stderr)
	}
	t.Logf("first rebuild, stderr:\n%sstdout:\n%s", stderr, stdout)
	if strings.Contains(stderr, "notification sent") {
		t.Fatalf("the rebuild called the Sender:\n%s", stderr)
	}
	if got := strings.Count(liveLogs.String(), `"msg":"notification sent"`); got != liveSends {
		t.Fatalf("live sends went from %d to %d during the rebuild", liveSends, got)
	}
	if after := published(); after != before {
		t.Fatalf("%d records published to %s during the rebuild (NOTIFICATION_SENT?), want none", after-before, events.TopicNotifications)
	}

	// Plant a difference: delete one live saga log row.
	gone := live.SagaLog[len(live.SagaLog)-1]
	if err := session.Query(`DELETE FROM `+liveKS+`.saga_log_by_order WHERE order_id = ? AND occurred_at = ? AND event_id = ?`,
		gone.OrderID, gone.OccurredAt, gone.EventID).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = rebuild(target2)
	want := "order " + gone.OrderID + " saga_log_by_order: extra at "
	if code != exitProblems || !strings.Contains(stdout, want) || !strings.Contains(stdout, gone.EventID) ||
		!strings.Contains(stdout, "DIFFERENT: 1 rows differ") {
		t.Fatalf("after deleting live row %s: exit %d, want 1 with %q\nstdout:\n%s\nstderr:\n%s", gone.EventID, code, want, stdout, stderr)
	}

	t.Logf("rebuild after the planted difference, stdout:\n%s", stdout)
	code, _, stderr = rebuild(target)
	if code != exitError || !strings.Contains(stderr, "not empty") || !strings.Contains(stderr, target) {
		t.Fatalf("rebuild into the non-empty %s: exit %d, want 2 naming it\nstderr:\n%s", target, code, stderr)
	}
}

func TestRebuildFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"rebuild", "order"}, "only notification"},
		{[]string{"rebuild", "notification", "--keyspace", "notification"}, "is the live keyspace"},
		{[]string{"rebuild", "notification", "--keyspace", "no-dashes"}, "NOTIFICATION_CASSANDRA_KEYSPACE"},
		{[]string{"rebuild", "notification", "--from", "yesterday"}, "--from"},
		{[]string{"rebuild", "notification", "--from", "9", "--to", "3"}, "must be below"},
		{[]string{"rebuild", "notification", "--brokers", "nohost"}, "--brokers"},
		{[]string{"rebuild", "notification", "--cassandra", "nohost"}, "--cassandra"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), tt.args, &out, &errOut); code != exitError || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, errOut.String(), tt.want)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"rebuild", "notification", "-h"}, &out, &errOut); code != exitOK ||
		!strings.Contains(errOut.String(), "Example") || !strings.Contains(errOut.String(), "-live-keyspace") {
		t.Errorf("-h: exit %d, %q", code, errOut.String())
	}
	// The default target is the live keyspace's name with a timestamp, within Cassandra's 48 characters.
	o, code, ok := parseRebuildFlags([]string{"--live-keyspace", strings.Repeat("k", 48)}, nil,
		time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), &bytes.Buffer{})
	if !ok || code != 0 || o.cfg.CassandraKeyspace != strings.Repeat("k", 25)+"_rebuild_20261130120000" {
		t.Errorf("default keyspace %q (ok %v)", o.cfg.CassandraKeyspace, ok)
	}
}
