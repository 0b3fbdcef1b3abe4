package adapters

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
)

// NotificationCassandraRepository is the app.Store on Cassandra. Every write
// is an upsert whose key derives from the event, so a redelivered event
// rewrites its own rows with the same values and no read-before-write or
// lightweight transaction is needed for idempotence.
type NotificationCassandraRepository struct {
	session *gocql.Session
}

var _ app.Store = (*NotificationCassandraRepository)(nil)

// Close ends the session.
func (r *NotificationCassandraRepository) Close() { r.session.Close() }

// Ping checks that a node answers (readiness).
func (r *NotificationCassandraRepository) Ping(ctx context.Context) error {
	var version string
	if err := r.session.Query(`SELECT release_version FROM system.local`).ScanContext(ctx, &version); err != nil {
		return fmt.Errorf("cassandra: ping: %w", err)
	}
	return nil
}

// PinOccurredAt reads the event's first time from saga_event_times, or
// records at. A known event costs one read. A new one is recorded with a
// lightweight transaction (INSERT … IF NOT EXISTS): two replicas can process
// copies of one event at once while a partition changes owner (a rebalance in
// a rolling update), and a plain read-then-write would let each keep its own
// time, so the saga log (keyed by time) would hold the event twice. The loser
// of the insert gets the winner's time back.
func (r *NotificationCassandraRepository) PinOccurredAt(ctx context.Context, orderID, eventID string, at time.Time) (time.Time, error) {
	var first time.Time
	err := r.session.Query(`SELECT occurred_at FROM saga_event_times WHERE order_id = ? AND event_id = ?`,
		orderID, eventID).ScanContext(ctx, &first)
	if err == nil {
		return first.UTC(), nil
	}
	if !errors.Is(err, gocql.ErrNotFound) {
		return time.Time{}, fmt.Errorf("cassandra: read time of event %s: %w", eventID, err)
	}
	at = at.UTC().Truncate(time.Millisecond)
	existing := map[string]any{}
	applied, err := r.session.Query(`INSERT INTO saga_event_times (order_id, event_id, occurred_at) VALUES (?, ?, ?) IF NOT EXISTS`,
		orderID, eventID, at).SerialConsistency(gocql.Serial).MapScanCASContext(ctx, existing)
	if err != nil {
		// A timed-out LWT has an unknown outcome; the consumer's retry reads
		// whatever was decided.
		return time.Time{}, fmt.Errorf("cassandra: record time of event %s: %w", eventID, err)
	}
	if applied {
		return at, nil
	}
	winner, ok := existing["occurred_at"].(time.Time)
	if !ok {
		return time.Time{}, fmt.Errorf("cassandra: record time of event %s: the row that won has no time (%v)", eventID, existing)
	}
	return winner.UTC(), nil
}

// RecordSagaEvent writes e into saga_log_by_order.
func (r *NotificationCassandraRepository) RecordSagaEvent(ctx context.Context, e app.SagaEvent) error {
	err := r.session.Query(`INSERT INTO saga_log_by_order
		(order_id, occurred_at, event_id, event_type, producer, causation_id, customer_id, envelope)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.OrderID, e.OccurredAt.UTC(), e.EventID, string(e.Type), e.Producer, nullableUUID(e.CausationID),
		nullableUUID(e.CustomerID), e.Envelope,
	).Idempotent(true).ExecContext(ctx)
	if err != nil {
		return fmt.Errorf("cassandra: insert saga event %s: %w", e.EventID, err)
	}
	return nil
}

// SagaLog reads an order's events, oldest first (ties by event id).
func (r *NotificationCassandraRepository) SagaLog(ctx context.Context, orderID string) ([]app.SagaEvent, error) {
	iter := r.session.Query(`SELECT order_id, occurred_at, event_id, event_type, producer, causation_id, customer_id, envelope
		FROM saga_log_by_order WHERE order_id = ?`, orderID).PageSize(500).IterContext(ctx)
	var out []app.SagaEvent
	scanner := iter.Scanner()
	for scanner.Next() {
		var (
			e         app.SagaEvent
			eventType string
		)
		if err := scanner.Scan(&e.OrderID, &e.OccurredAt, &e.EventID, &eventType, &e.Producer,
			&e.CausationID, &e.CustomerID, &e.Envelope); err != nil {
			return nil, fmt.Errorf("cassandra: scan saga log of %s: %w", orderID, err)
		}
		e.Type = notification.EventType(eventType)
		e.OccurredAt = e.OccurredAt.UTC()
		out = append(out, e)
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("cassandra: read saga log of %s: %w", orderID, err)
	}
	return out, nil
}

// SaveNotification upserts n without touching delivered_at, and reports
// whether that was already set.
func (r *NotificationCassandraRepository) SaveNotification(ctx context.Context, n notification.Notification) (bool, error) {
	var deliveredAt time.Time
	err := r.session.Query(`SELECT delivered_at FROM notifications_by_customer
		WHERE customer_id = ? AND send_time = ? AND notification_id = ?`,
		n.CustomerID, n.SendTime, n.ID).ScanContext(ctx, &deliveredAt)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return false, fmt.Errorf("cassandra: read notification %s: %w", n.ID, err)
	}
	err = r.session.Query(`INSERT INTO notifications_by_customer
		(customer_id, send_time, notification_id, order_id, channel, template, subject, body, event_type, event_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		n.CustomerID, n.SendTime, n.ID, n.OrderID, string(n.Channel), n.Template, n.Subject, n.Body,
		string(n.EventType), n.EventID,
	).Idempotent(true).ExecContext(ctx)
	if err != nil {
		return false, fmt.Errorf("cassandra: insert notification %s: %w", n.ID, err)
	}
	return !deliveredAt.IsZero(), nil
}

// MarkDelivered sets delivered_at on n's row.
func (r *NotificationCassandraRepository) MarkDelivered(ctx context.Context, n notification.Notification, at time.Time) error {
	err := r.session.Query(`UPDATE notifications_by_customer SET delivered_at = ?
		WHERE customer_id = ? AND send_time = ? AND notification_id = ?`,
		at.UTC(), n.CustomerID, n.SendTime, n.ID).Idempotent(true).ExecContext(ctx)
	if err != nil {
		return fmt.Errorf("cassandra: mark notification %s delivered: %w", n.ID, err)
	}
	return nil
}

// ListNotifications reads one page with Cassandra's own paging: the token is
// the paging state, bound to the customer it was issued for.
func (r *NotificationCassandraRepository) ListNotifications(ctx context.Context, customerID string, pageSize int, pageToken string) (app.NotificationPage, error) {
	state, err := decodePageToken(customerID, pageToken)
	if err != nil {
		return app.NotificationPage{}, err
	}
	iter := r.session.Query(`SELECT customer_id, send_time, notification_id, order_id, channel, template, subject,
		body, event_type, event_id FROM notifications_by_customer WHERE customer_id = ?`, customerID).
		PageSize(pageSize).PageState(state).IterContext(ctx)
	next := iter.PageState()
	page := app.NotificationPage{Notifications: make([]notification.Notification, 0, iter.NumRows())}
	scanner := iter.Scanner()
	for scanner.Next() {
		var (
			n                            notification.Notification
			channel, eventType, ignoreID string
		)
		if err := scanner.Scan(&ignoreID, &n.SendTime, &n.ID, &n.OrderID, &channel, &n.Template, &n.Subject,
			&n.Body, &eventType, &n.EventID); err != nil {
			return app.NotificationPage{}, fmt.Errorf("cassandra: scan notifications of %s: %w", customerID, err)
		}
		n.CustomerID = customerID
		n.Channel, n.EventType = notification.Channel(channel), notification.EventType(eventType)
		n.SendTime = n.SendTime.UTC()
		page.Notifications = append(page.Notifications, n)
	}
	if err := scanner.Err(); err != nil {
		var reqErr gocql.RequestError
		if len(state) > 0 && errors.As(err, &reqErr) &&
			(reqErr.Code() == gocql.ErrCodeProtocol || reqErr.Code() == gocql.ErrCodeInvalid) {
			// A forged token that decodes but is no paging state.
			return app.NotificationPage{}, fmt.Errorf("%w: %s", app.ErrInvalidPageToken, reqErr.Message())
		}
		return app.NotificationPage{}, fmt.Errorf("cassandra: list notifications of %s: %w", customerID, err)
	}
	if len(next) > 0 {
		page.NextPageToken = encodePageToken(customerID, next)
	}
	return page, nil
}

// Page tokens: base64url(version | first 8 bytes of sha256(customer id) |
// paging state). The customer hash keeps a token from being replayed against
// another customer's partition.
const pageTokenVersion = 1

func customerTag(customerID string) []byte {
	sum := sha256.Sum256([]byte(customerID))
	return sum[:8]
}

func encodePageToken(customerID string, state []byte) string {
	b := append([]byte{pageTokenVersion}, customerTag(customerID)...)
	return base64.RawURLEncoding.EncodeToString(append(b, state...))
}

func decodePageToken(customerID, token string) ([]byte, error) {
	if token == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", app.ErrInvalidPageToken)
	}
	if len(b) < 10 || b[0] != pageTokenVersion {
		return nil, fmt.Errorf("%w: unknown format", app.ErrInvalidPageToken)
	}
	if !bytes.Equal(b[1:9], customerTag(customerID)) {
		return nil, fmt.Errorf("%w: issued for another customer", app.ErrInvalidPageToken)
	}
	return b[9:], nil
}

// nullableUUID binds "" as null: a uuid column rejects an empty string.
func nullableUUID(id string) any {
	if id == "" {
		return nil
	}
	return id
}
