package notification_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	"github.com/sagasuite/sagasuite/services/notification"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters/cassandratest"
	domain "github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
	"github.com/sagasuite/sagasuite/services/notification/internal/ports"
	"github.com/sagasuite/sagasuite/services/notification/internal/sagatest"
)

const partitions = 3

// sentLines counts the "notification sent" lines of the service's JSON log
// (the LogSender writes one per notification sent) per notification id.
func sentLines(t *testing.T, logs *testenv.SyncBuffer) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, line := range strings.Split(logs.String(), "\n") {
		if line == "" {
			continue
		}
		var rec struct {
			Msg            string `json:"msg"`
			NotificationID string `json:"notification_id"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec.Msg == "notification sent" {
			out[rec.NotificationID]++
		}
	}
	return out
}

func slogJSON(w *testenv.SyncBuffer) *slog.Logger {
	// DEBUG: the LogSender's "notification sent" lines are DEBUG.
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type running struct {
	client notificationv1.NotificationServiceClient
	logs   *testenv.SyncBuffer
	prefix string
	addr   string // the gRPC API, for callers other than the test's service identity
	cfg    notification.Config
}

// start runs the service in-process on a fresh keyspace and topic prefix.
func start(t *testing.T) running {
	t.Helper()
	prefix := testenv.UniqueName("notif-") + "."
	cfg := notification.Config{
		Common: config.Common{GRPCAddr: "127.0.0.1:0", OpsAddr: "127.0.0.1:0", LogLevel: config.LevelInfo,
			LogFormat: config.FormatJSON, ShutdownTimeout: 5 * time.Second},
		KafkaConfig:    servicetest.SagaTopics(t, service.KafkaConfig{Brokers: testenv.Brokers(), TopicPrefix: prefix, Partitions: partitions, ReplicationFactor: 1}),
		CassandraHosts: cassandratest.Hosts(), CassandraKeyspace: cassandratest.Keyspace(t),
		CassandraReplication: "{'class':'SimpleStrategy','replication_factor':1}",
		CassandraConsistency: "LOCAL_QUORUM", CassandraTimeout: 30 * time.Second,
	}
	logs := &testenv.SyncBuffer{}
	rt := service.Runtime{
		Clock:           clock.NewManual(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)),
		Logger:          slogJSON(logs),
		SharedTelemetry: true, Registry: prometheus.NewRegistry(),
	}
	conn := servicetest.Start(t, rt, func(ctx context.Context, rt service.Runtime) error { return notification.Run(ctx, cfg, rt) })
	return running{client: notificationv1.NewNotificationServiceClient(conn), logs: logs, prefix: prefix, addr: conn.Target(), cfg: cfg}
}

// waitBound bounds this test's waits for the service and Kafka: a bound for
// a hang, not a speed requirement, so a busy machine stays within it.
const waitBound = 2 * time.Minute

func publish(t *testing.T, prefix string, envs ...*eventsv1.Envelope) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	p := bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(prefix))
	defer p.Close()
	msgs := make([]bus.Message, len(envs))
	for i, env := range envs {
		msg, err := bus.EncodeEnvelope(ctx, env)
		if err != nil {
			t.Fatalf("encode %s: %v", env.GetType(), err)
		}
		msgs[i] = msg
	}
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// waitConsumed waits until the service's consumer group has committed every
// record on the saga topics, i.e. handled everything published so far (the
// bus commits only after the handler's effect).
func waitConsumed(t *testing.T, prefix string) {
	t.Helper()
	// Own transport: the shared one caches topic metadata for 6 s.
	client := &kafka.Client{Addr: kafka.TCP(testenv.Brokers()...), Timeout: 10 * time.Second,
		Transport: &kafka.Transport{MetadataTTL: time.Second}}
	group := prefix + notification.Name
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	deadline := time.Now().Add(waitBound)
	var lag map[string]int64
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lag = map[string]int64{}
		ok := true
		for _, base := range events.AllTopics {
			topic := prefix + base
			reqs := make([]kafka.OffsetRequest, len(parts))
			for i, p := range parts {
				reqs[i] = kafka.LastOffsetOf(p)
			}
			ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
			if err != nil {
				ok = false
				break
			}
			committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
			if err != nil {
				ok = false
				break
			}
			done := map[int]int64{}
			for _, p := range committed.Topics[topic] {
				done[p.Partition] = p.CommittedOffset
			}
			for _, p := range ends.Topics[topic] {
				if p.Error != nil {
					ok = false
					continue
				}
				if behind := p.LastOffset - max(done[p.Partition], 0); behind > 0 {
					lag[topic] += behind
					ok = false
				}
			}
		}
		cancel()
		if ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("consumer group %s did not catch up within %s; lag %v", group, waitBound, lag)
}

func sagaLog(t *testing.T, c notificationv1.NotificationServiceClient, orderID string) []*eventsv1.Envelope {
	t.Helper()
	resp, err := c.GetSagaLog(context.Background(), &notificationv1.GetSagaLogRequest{OrderId: orderID})
	if err != nil {
		t.Fatalf("GetSagaLog: %v", err)
	}
	return resp.GetEvents()
}

// answered is env as GetSagaLog answers it: as published, with its payment
// method token masked.
func answered(env *eventsv1.Envelope) *eventsv1.Envelope {
	out := proto.Clone(env).(*eventsv1.Envelope)
	if p := out.GetOrderCreated(); p != nil {
		p.PaymentMethodToken = ports.PaymentTokenMask
	}
	if p := out.GetStockReserved(); p != nil {
		p.PaymentMethodToken = ports.PaymentTokenMask
	}
	return out
}

func listAll(t *testing.T, c notificationv1.NotificationServiceClient, customerID string, pageSize int32) ([]*notificationv1.Notification, int) {
	t.Helper()
	var out []*notificationv1.Notification
	token := ""
	for pages := 1; ; pages++ {
		resp, err := c.ListNotifications(context.Background(), &notificationv1.ListNotificationsRequest{
			CustomerId: customerID, PageSize: pageSize, PageToken: token})
		if err != nil {
			t.Fatalf("ListNotifications page %d: %v", pages, err)
		}
		out = append(out, resp.GetNotifications()...)
		if resp.GetNextPageToken() == "" || pages > 20 {
			return out, pages
		}
		token = resp.GetNextPageToken()
	}
}

// One order's events of every type: each is in the saga log once, oldest
// first, as published; the four customer-facing ones are notifications,
// newest first, each sent once. A second delivery of all of them changes
// nothing and sends nothing.
func TestEveryEventIsLoggedAndCustomersAreToldOnce(t *testing.T) {
	svc := start(t)
	orderID, customerID := testenv.IDFor(t.Name()+"/order"), testenv.IDFor(t.Name()+"/customer")
	start := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	envs := sagatest.Envelopes(t, orderID, customerID, start, sagatest.AllTypes(t))
	// Published in reverse, so each topic delivers the saga out of order:
	// the log still reads in occurrence order.
	reversed := make([]*eventsv1.Envelope, len(envs))
	for i, env := range envs {
		reversed[len(envs)-1-i] = env
	}
	publish(t, svc.prefix, reversed...)
	waitConsumed(t, svc.prefix)

	assertLog := func(when string) {
		got := sagaLog(t, svc.client, orderID)
		if len(got) != len(envs) {
			t.Fatalf("%s: saga log has %d events, want %d (one per event)", when, len(got), len(envs))
		}
		for i := range envs {
			if !proto.Equal(got[i], answered(envs[i])) {
				t.Fatalf("%s: saga log[%d] = %s %s, want %s %s", when, i, got[i].GetType(), got[i].GetEventId(), envs[i].GetType(), envs[i].GetEventId())
			}
		}
	}
	wantTold := []struct {
		env      *eventsv1.Envelope
		template string
		subject  string
	}{ // newest first
		{envs[11], "order_completed", "ships"},
		{envs[7], "order_cancelled", "was cancelled"},
		{envs[5], "payment_refunded", "Your refund of 49.99 EUR"},
		{envs[0], "order_received", "We received your order"},
	}
	assertNotifications := func(when string) {
		for _, size := range []int32{0, 3, 1} {
			got, pages := listAll(t, svc.client, customerID, size)
			if len(got) != len(wantTold) {
				t.Fatalf("%s, page size %d: %d notifications in %d pages, want %d", when, size, len(got), pages, len(wantTold))
			}
			for i, w := range wantTold {
				n := got[i]
				if n.GetEventId() != w.env.GetEventId() || n.GetEventType() != w.env.GetType() || n.GetTemplate() != w.template ||
					!strings.Contains(n.GetSubject(), w.subject) || n.GetOrderId() != orderID || n.GetCustomerId() != customerID ||
					n.GetNotificationId() != notificationID(w.env) || n.GetChannel() != eventsv1.NotificationChannel_NOTIFICATION_CHANNEL_EMAIL ||
					!n.GetSendTime().AsTime().Equal(w.env.GetOccurredAt().AsTime()) || n.GetBody() == "" {
					t.Fatalf("%s, page size %d: notification %d = %v, want %s for %s", when, size, i, n, w.template, w.env.GetEventId())
				}
			}
		}
		if got := firstPage(t, svc.client, customerID, 3); !strings.Contains(got[1].GetBody(), "because we could not arrange its delivery") {
			t.Fatalf("%s: cancellation body %q does not give the reason in words", when, got[1].GetBody())
		}
		sent := sentLines(t, svc.logs)
		if len(sent) != len(wantTold) {
			t.Fatalf("%s: the Sender was called for %d notifications (%v), want %d", when, len(sent), sent, len(wantTold))
		}
		for _, w := range wantTold {
			if c := sent[notificationID(w.env)]; c != 1 {
				t.Fatalf("%s: notification for %s sent %d times, want once", when, w.template, c)
			}
		}
	}
	assertLog("first delivery")
	assertNotifications("first delivery")

	publish(t, svc.prefix, envs...) // every event again
	publish(t, svc.prefix, envs[5], envs[0], envs[11])
	waitConsumed(t, svc.prefix)
	assertLog("after duplicates")
	assertNotifications("after duplicates")
}

func firstPage(t *testing.T, c notificationv1.NotificationServiceClient, customerID string, size int32) []*notificationv1.Notification {
	t.Helper()
	resp, err := c.ListNotifications(context.Background(), &notificationv1.ListNotificationsRequest{CustomerId: customerID, PageSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetNotifications()
}

func notificationID(env *eventsv1.Envelope) string { return domain.IDFor(env.GetEventId()) }

// An event this service can never process (an unknown schema version) goes
// to the group's dead-letter topic and is not logged; the partition moves on.
func TestUnprocessableEventIsDeadLettered(t *testing.T) {
	svc := start(t)
	orderID, customerID := testenv.IDFor(t.Name()+"/order"), testenv.IDFor(t.Name()+"/customer")
	envs := sagatest.Envelopes(t, orderID, customerID, time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), sagatest.AllTypes(t)[:2])
	future := proto.Clone(envs[0]).(*eventsv1.Envelope)
	future.SchemaVersion = events.SchemaVersion + 1
	publish(t, svc.prefix, future, envs[1])
	waitConsumed(t, svc.prefix)

	reader := kafka.NewReader(kafka.ReaderConfig{Brokers: testenv.Brokers(), Topic: svc.prefix + notification.Name + ".dlq",
		Partition: 0, MaxBytes: 10 << 20, MaxWait: 250 * time.Millisecond})
	defer reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	m, err := reader.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("no dead letter within %s: %v", waitBound, err)
	}
	var headers = map[string]string{}
	for _, h := range m.Headers {
		headers[h.Key] = string(h.Value)
	}
	if headers[bus.HeaderEventID] != future.GetEventId() || !strings.Contains(headers[bus.HeaderDLQError], "schema version") {
		t.Fatalf("dead letter %v, want event %s with a schema version error", headers, future.GetEventId())
	}
	log := sagaLog(t, svc.client, orderID)
	if len(log) != 1 || log[0].GetEventId() != envs[1].GetEventId() {
		t.Fatalf("saga log %v, want only the processable %s", log, envs[1].GetEventId())
	}
	if sent := sentLines(t, svc.logs); len(sent) != 0 {
		t.Fatalf("nothing customer-facing was processable, yet sent %v", sent)
	}
}

func TestInvalidRequestsNameTheField(t *testing.T) {
	svc := start(t)
	customer := testenv.IDFor(t.Name() + "/customer")
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"list: customer id not a uuid", func() error {
			_, err := svc.client.ListNotifications(context.Background(), &notificationv1.ListNotificationsRequest{CustomerId: "bob"})
			return err
		}, codes.InvalidArgument, "customer_id"},
		{"list: page size too big", func() error {
			_, err := svc.client.ListNotifications(context.Background(), &notificationv1.ListNotificationsRequest{CustomerId: customer, PageSize: 101})
			return err
		}, codes.InvalidArgument, "page_size"},
		{"list: page token not ours", func() error {
			_, err := svc.client.ListNotifications(context.Background(), &notificationv1.ListNotificationsRequest{CustomerId: customer, PageToken: "forged!"})
			return err
		}, codes.InvalidArgument, "page_token"},
		{"saga log: order id not a uuid", func() error {
			_, err := svc.client.GetSagaLog(context.Background(), &notificationv1.GetSagaLogRequest{OrderId: "42"})
			return err
		}, codes.InvalidArgument, "order_id"},
		{"saga log: unknown order", func() error {
			_, err := svc.client.GetSagaLog(context.Background(), &notificationv1.GetSagaLogRequest{OrderId: testenv.IDFor("nobody's order")})
			return err
		}, codes.NotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := status.FromError(tt.call())
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.field) {
				t.Fatalf("got %v %q, want %v naming %q", st.Code(), st.Message(), tt.code, tt.field)
			}
		})
	}
	// A customer with nothing yet: an empty first page, not an error.
	resp, err := svc.client.ListNotifications(context.Background(), &notificationv1.ListNotificationsRequest{CustomerId: customer})
	if err != nil || len(resp.GetNotifications()) != 0 || resp.GetNextPageToken() != "" {
		t.Fatalf("empty customer: %v, %v", resp, err)
	}
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	cfg, err := config.LoadFrom[notification.Config]("NOTIFICATION", []string{
		"NOTIFICATION_KAFKA_BROKERS=127.0.0.1:19092", "NOTIFICATION_CASSANDRA_HOSTS=127.0.0.1:19042",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CassandraConsistency != "LOCAL_QUORUM" || cfg.CassandraKeyspace != "notification" ||
		cfg.CassandraReplication != "{'class':'SimpleStrategy','replication_factor':1}" || cfg.CassandraTimeout != 10*time.Second {
		t.Fatalf("defaults: %+v", cfg)
	}
	_, err = config.LoadFrom[notification.Config]("NOTIFICATION", []string{
		"NOTIFICATION_KAFKA_BROKERS=127.0.0.1:19092", "NOTIFICATION_CASSANDRA_HOSTS=127.0.0.1:19042",
		"NOTIFICATION_CASSANDRA_KEYSPACE=no-dashes", "NOTIFICATION_CASSANDRA_CONSISTENCY=sometimes",
		"NOTIFICATION_CASSANDRA_REPLICATION={'class':'SimpleStrategy'}; DROP KEYSPACE x",
	})
	var cfgErr *config.Error
	if !errors.As(err, &cfgErr) {
		t.Fatalf("bad config: %v, want a config error", err)
	}
	for _, name := range []string{"NOTIFICATION_CASSANDRA_KEYSPACE", "NOTIFICATION_CASSANDRA_CONSISTENCY", "NOTIFICATION_CASSANDRA_REPLICATION"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("config error %q does not name %s", err, name)
		}
	}
	if _, err := config.LoadFrom[notification.Config]("NOTIFICATION", []string{"NOTIFICATION_KAFKA_BROKERS=x"}); err == nil ||
		!strings.Contains(err.Error(), "NOTIFICATION_CASSANDRA_HOSTS") {
		t.Fatalf("missing hosts: %v", err)
	}
}
