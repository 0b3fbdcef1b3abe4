package notification_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	"github.com/sagasuite/sagasuite/services/notification"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters/cassandratest"
	"github.com/sagasuite/sagasuite/services/notification/internal/sagatest"
)

// Two notification processes start together on a keyspace that does not
// exist yet (both create it and migrate) and share the consumer group. 40
// orders' events are delivered twice, a third of them re-emitted once more
// with a later time (a producer redoing a lost transaction), and one replica
// is replaced midway (the new one started before the old one stops). Every
// order's saga log holds each event once, at its first time; every customer
// has their four notifications, each sent.
func TestTwoReplicasOnOneKeyspaceAndGroupWithARollingRestart(t *testing.T) {
	prefix := testenv.UniqueName("notif-") + "."
	cfg := notification.Config{
		Common: config.Common{GRPCAddr: "127.0.0.1:0", OpsAddr: "127.0.0.1:0", LogLevel: config.LevelInfo,
			LogFormat: config.FormatJSON, ShutdownTimeout: 5 * time.Second},
		KafkaConfig:    servicetest.SagaTopics(t, service.KafkaConfig{Brokers: testenv.Brokers(), TopicPrefix: prefix, Partitions: partitions, ReplicationFactor: 1}),
		CassandraHosts: cassandratest.Hosts(), CassandraKeyspace: cassandratest.Keyspace(t),
		CassandraReplication: "{'class':'SimpleStrategy','replication_factor':1}",
		CassandraConsistency: "LOCAL_QUORUM", CassandraTimeout: 30 * time.Second,
	}
	var logs []*testenv.SyncBuffer
	launch := func() *servicetest.Instance {
		buf := &testenv.SyncBuffer{}
		logs = append(logs, buf)
		rt := service.Runtime{Clock: clock.NewManual(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)), Logger: slogJSON(buf),
			SharedTelemetry: true, Registry: prometheus.NewRegistry()}
		return servicetest.Launch(t, rt, func(ctx context.Context, rt service.Runtime) error { return notification.Run(ctx, cfg, rt) })
	}
	a, b := launch(), launch()
	client := notificationv1.NewNotificationServiceClient(a.WaitReady())
	b.WaitReady()

	const orders = 40
	start := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	type order struct{ id, customer string }
	all := make([]order, orders)
	envsOf := map[string][]*eventsv1.Envelope{}
	for i := range all {
		all[i] = order{testenv.IDFor(fmt.Sprintf("%s/order-%d", t.Name(), i)), testenv.IDFor(fmt.Sprintf("%s/customer-%d", t.Name(), i))}
		envsOf[all[i].id] = sagatest.Envelopes(t, all[i].id, all[i].customer, start.Add(time.Duration(i)*time.Minute), sagatest.AllTypes(t))
	}
	send := func(from, to int) {
		var batch []*eventsv1.Envelope
		for _, o := range all[from:to] {
			for j, env := range envsOf[o.id] {
				batch = append(batch, env, env)
				if j%3 == 0 { // the re-emitted copy: same id, a later time
					late := proto.Clone(env).(*eventsv1.Envelope)
					late.OccurredAt = timestamppb.New(env.GetOccurredAt().AsTime().Add(time.Hour))
					batch = append(batch, late)
				}
			}
		}
		publish(t, prefix, batch...)
	}
	send(0, orders/2)
	c := launch() // the rolling update of replica B
	c.WaitReady()
	b.Stop()
	send(orders/2, orders)
	waitConsumed(t, prefix)

	for i, o := range all {
		want := envsOf[o.id]
		got := sagaLog(t, client, o.id)
		if len(got) != len(want) {
			t.Fatalf("order %d: saga log has %d events, want %d (each once)", i, len(got), len(want))
		}
		for j := range want {
			if !proto.Equal(got[j], answered(want[j])) {
				t.Fatalf("order %d: saga log[%d] = %s at %s, want %s at its first time %s", i, j, got[j].GetEventId(),
					got[j].GetOccurredAt().AsTime(), want[j].GetEventId(), want[j].GetOccurredAt().AsTime())
			}
		}
		told, _ := listAll(t, client, o.customer, 0)
		if len(told) != 4 {
			t.Fatalf("order %d: %d notifications, want 4", i, len(told))
		}
	}
	sent := map[string]int{}
	for _, buf := range logs {
		for id, n := range sentLines(t, buf) {
			sent[id] += n
		}
	}
	if len(sent) != 4*orders {
		t.Fatalf("the Sender was called for %d notifications across the replicas, want %d", len(sent), 4*orders)
	}
	resent := 0
	for _, n := range sent {
		resent += n - 1
	}
	t.Logf("%d orders, %d notifications sent, %d sent again (the Sender is at-least-once across a rebalance)", orders, len(sent), resent)
}
