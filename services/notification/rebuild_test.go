package notification_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/notification"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters/cassandratest"
	"github.com/sagasuite/sagasuite/services/notification/internal/sagatest"
)

// The live service consumes two sagas; a rebuild fed the same events through
// the same handler in replay mode writes the same rows into an empty keyspace
// and tells nobody. A row deleted from the live model is then reported, an
// unprocessable event is skipped as the live consumer dead-letters it, and a
// second rebuild into the now non-empty keyspace is refused.
func TestRebuildEqualsTheLiveModelAndSendsNothing(t *testing.T) {
	svc := start(t)
	var envs []*eventsv1.Envelope
	for _, name := range []string{"a", "b"} {
		orderID, customerID := testenv.IDFor(t.Name()+"/order/"+name), testenv.IDFor(t.Name()+"/customer/"+name)
		envs = append(envs, sagatest.Envelopes(t, orderID, customerID, time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), sagatest.AllTypes(t))...)
	}
	publish(t, svc.prefix, envs...)
	waitConsumed(t, svc.prefix)
	liveSent := sentLines(t, svc.logs)
	if len(liveSent) != 8 {
		t.Fatalf("live service sent %d notifications, want 8 (4 customer-facing events × 2 orders)", len(liveSent))
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	target := svc.cfg
	target.CassandraKeyspace = cassandratest.Keyspace(t)
	rebuildLogs := &testenv.SyncBuffer{}
	r, err := notification.OpenRebuild(ctx, target, slogJSON(rebuildLogs))
	if err != nil {
		t.Fatalf("OpenRebuild into an empty keyspace: %v", err)
	}
	defer r.Close()
	recordTime := time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	for _, env := range envs {
		if err := r.Apply(ctx, env, recordTime); err != nil {
			t.Fatalf("Apply %s: %v", env.GetType(), err)
		}
	}
	future := proto.Clone(envs[0]).(*eventsv1.Envelope)
	future.SchemaVersion = events.SchemaVersion + 1
	if err := r.Apply(ctx, future, recordTime); !errors.Is(err, notification.ErrUnprocessable) {
		t.Fatalf("Apply of an unknown schema version = %v, want ErrUnprocessable", err)
	}
	if sent := sentLines(t, rebuildLogs); len(sent) != 0 {
		t.Fatalf("the rebuild called the Sender for %v", sent)
	}
	if sent := sentLines(t, svc.logs); len(sent) != len(liveSent) {
		t.Fatalf("live sends went from %d to %d during the rebuild", len(liveSent), len(sent))
	}

	rebuilt, err := r.Model(ctx)
	if err != nil {
		t.Fatal(err)
	}
	live, err := notification.ReadModel(ctx, svc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(live.SagaLog) != len(envs) || len(live.Notifications) != 8 || len(live.EventTimes) != len(envs) {
		t.Fatalf("live model has %d log rows, %d notifications, %d event times; want %d, 8, %d",
			len(live.SagaLog), len(live.Notifications), len(live.EventTimes), len(envs), len(envs))
	}
	if diffs := notification.Compare(live, rebuilt); len(diffs) != 0 {
		t.Fatalf("rebuilt model differs from the live one:\n%v", diffs)
	}
	for _, n := range rebuilt.Notifications {
		if !n.Delivered {
			t.Fatalf("rebuilt notification %s not marked delivered: a redelivery would send it again", n.ID)
		}
	}

	// Plant a difference: delete one live notification row.
	gone := live.Notifications[0]
	cluster := gocql.NewCluster(cassandratest.Hosts()...)
	cluster.Keyspace, cluster.Timeout = svc.cfg.CassandraKeyspace, 30*time.Second
	session, err := cluster.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	if err := session.Query(`DELETE FROM notifications_by_customer WHERE customer_id = ? AND send_time = ? AND notification_id = ?`,
		gone.CustomerID, gone.SendTime, gone.ID).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	live, err = notification.ReadModel(ctx, svc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	diffs := notification.Compare(live, rebuilt)
	if len(diffs) != 1 || diffs[0].Kind != "extra" || diffs[0].Table != "notifications_by_customer" ||
		!strings.Contains(diffs[0].String(), gone.ID) || !strings.Contains(diffs[0].String(), gone.CustomerID) {
		t.Fatalf("after deleting live notification %s: differences %v, want that one row reported extra in the rebuild", gone.ID, diffs)
	}

	if _, err := notification.OpenRebuild(ctx, target, nil); !errors.Is(err, notification.ErrTargetNotEmpty) ||
		!strings.Contains(err.Error(), target.CassandraKeyspace) {
		t.Fatalf("rebuild into the non-empty %s: %v, want ErrTargetNotEmpty naming it", target.CassandraKeyspace, err)
	}
	missing := svc.cfg
	missing.CassandraKeyspace = testenv.UniqueName("notif_missing_")
	if _, err := notification.ReadModel(ctx, missing); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("reading a missing live keyspace: %v, want a does-not-exist error", err)
	}
}
