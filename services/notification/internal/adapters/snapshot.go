package adapters

import (
	"context"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
)

// modelTables are the tables a read model consists of (schema_migrations and
// the migration lock are bookkeeping, not the model).
var modelTables = []string{"saga_log_by_order", "notifications_by_customer", "saga_event_times"}

// KeyspaceState says whether cfg.Keyspace exists and whether any of the
// model's tables in it holds a row (a rebuild must start from nothing).
func KeyspaceState(ctx context.Context, cfg CassandraConfig) (exists, hasRows bool, err error) {
	if !ValidKeyspace(cfg.Keyspace) {
		return false, false, fmt.Errorf("cassandra: invalid keyspace name %q", cfg.Keyspace)
	}
	session, err := cfg.cluster("").CreateSession()
	if err != nil {
		return false, false, fmt.Errorf("cassandra: connect to %v: %w", cfg.Hosts, err)
	}
	defer session.Close()
	tables := map[string]bool{}
	iter := session.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, cfg.Keyspace).IterContext(ctx)
	var name string
	for iter.Scan(&name) {
		tables[name] = true
	}
	if err := iter.Close(); err != nil {
		return false, false, fmt.Errorf("cassandra: list tables of %s: %w", cfg.Keyspace, err)
	}
	var ksName string
	err = session.Query(`SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?`, cfg.Keyspace).ScanContext(ctx, &ksName)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return false, false, nil
	case err != nil:
		return false, false, fmt.Errorf("cassandra: look up keyspace %s: %w", cfg.Keyspace, err)
	}
	for _, t := range modelTables {
		if !tables[t] {
			continue
		}
		var token int64
		err := session.Query(fmt.Sprintf(`SELECT token(%s) FROM %s.%s LIMIT 1`, partitionKey(t), cfg.Keyspace, t)).ScanContext(ctx, &token)
		switch {
		case errors.Is(err, gocql.ErrNotFound):
		case err != nil:
			return true, false, fmt.Errorf("cassandra: read %s.%s: %w", cfg.Keyspace, t, err)
		default:
			return true, true, nil
		}
	}
	return true, false, nil
}

func partitionKey(table string) string {
	if table == "notifications_by_customer" {
		return "customer_id"
	}
	return "order_id"
}

// OpenCassandraExisting connects to cfg.Keyspace as it is: nothing is
// created or migrated (reading the live model must not change it). A missing
// keyspace is an error.
func OpenCassandraExisting(ctx context.Context, cfg CassandraConfig) (*NotificationCassandraRepository, error) {
	exists, _, err := KeyspaceState(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, fmt.Errorf("cassandra: keyspace %s does not exist on %v", cfg.Keyspace, cfg.Hosts)
	}
	session, err := cfg.cluster(cfg.Keyspace).CreateSession()
	if err != nil {
		return nil, fmt.Errorf("cassandra: connect to %v, keyspace %s: %w", cfg.Hosts, cfg.Keyspace, err)
	}
	return &NotificationCassandraRepository{session: session}, nil
}

// Snapshot reads every row of the model's tables (full scans, paged): for
// comparing two models, not for the request path.
func (r *NotificationCassandraRepository) Snapshot(ctx context.Context) (app.Model, error) {
	var m app.Model
	iter := r.session.Query(`SELECT order_id, occurred_at, event_id, event_type, producer, causation_id, customer_id, envelope
		FROM saga_log_by_order`).PageSize(1000).IterContext(ctx)
	sc := iter.Scanner()
	for sc.Next() {
		var e app.SagaEvent
		var eventType string
		if err := sc.Scan(&e.OrderID, &e.OccurredAt, &e.EventID, &eventType, &e.Producer, &e.CausationID, &e.CustomerID, &e.Envelope); err != nil {
			return app.Model{}, fmt.Errorf("cassandra: scan saga_log_by_order: %w", err)
		}
		e.Type, e.OccurredAt = notification.EventType(eventType), e.OccurredAt.UTC()
		m.SagaLog = append(m.SagaLog, e)
	}
	if err := sc.Err(); err != nil {
		return app.Model{}, fmt.Errorf("cassandra: read saga_log_by_order: %w", err)
	}
	iter = r.session.Query(`SELECT customer_id, send_time, notification_id, order_id, channel, template, subject,
		body, event_type, event_id, delivered_at FROM notifications_by_customer`).PageSize(1000).IterContext(ctx)
	sc = iter.Scanner()
	for sc.Next() {
		var n app.StoredNotification
		var channel, eventType string
		var deliveredAt time.Time
		if err := sc.Scan(&n.CustomerID, &n.SendTime, &n.ID, &n.OrderID, &channel, &n.Template, &n.Subject,
			&n.Body, &eventType, &n.EventID, &deliveredAt); err != nil {
			return app.Model{}, fmt.Errorf("cassandra: scan notifications_by_customer: %w", err)
		}
		n.Channel, n.EventType = notification.Channel(channel), notification.EventType(eventType)
		n.SendTime, n.Delivered = n.SendTime.UTC(), !deliveredAt.IsZero()
		m.Notifications = append(m.Notifications, n)
	}
	if err := sc.Err(); err != nil {
		return app.Model{}, fmt.Errorf("cassandra: read notifications_by_customer: %w", err)
	}
	iter = r.session.Query(`SELECT order_id, event_id, occurred_at FROM saga_event_times`).PageSize(1000).IterContext(ctx)
	sc = iter.Scanner()
	for sc.Next() {
		var et app.EventTime
		if err := sc.Scan(&et.OrderID, &et.EventID, &et.OccurredAt); err != nil {
			return app.Model{}, fmt.Errorf("cassandra: scan saga_event_times: %w", err)
		}
		et.OccurredAt = et.OccurredAt.UTC()
		m.EventTimes = append(m.EventTimes, et)
	}
	if err := sc.Err(); err != nil {
		return app.Model{}, fmt.Errorf("cassandra: read saga_event_times: %w", err)
	}
	app.SortModel(&m)
	return m, nil
}

// Snapshot copies every row.
func (r *NotificationMemoryRepository) Snapshot(context.Context) (app.Model, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var m app.Model
	for _, byKey := range r.log {
		for _, e := range byKey {
			e.Envelope = append([]byte(nil), e.Envelope...)
			m.SagaLog = append(m.SagaLog, e)
		}
	}
	for _, byKey := range r.notifications {
		for _, s := range byKey {
			m.Notifications = append(m.Notifications, app.StoredNotification{Notification: s.n, Delivered: s.delivered})
		}
	}
	for key, at := range r.eventTimes {
		m.EventTimes = append(m.EventTimes, app.EventTime{OrderID: key[0], EventID: key[1], OccurredAt: at})
	}
	app.SortModel(&m)
	return m, nil
}
