// Package app holds the notification service's use cases: recording a saga
// event (and telling the customer when it is customer-facing), listing a
// customer's notifications and reading an order's saga log. Its dependencies
// are interfaces: the Store (Cassandra in production; the dev stack's
// stand-in must pass the same contract test) and the Sender.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
)

// SagaEvent is one entry of an order's saga log: every event of the saga, as
// received. Its key (order, occurrence time, event id) derives from the event,
// so a redelivered event rewrites its own entry.
type SagaEvent struct {
	OrderID     string
	OccurredAt  time.Time // kept to the millisecond
	EventID     string
	Type        notification.EventType
	Producer    string
	CausationID string
	CustomerID  string
	// Envelope is the event's wire encoding, returned as recorded.
	Envelope []byte
}

// NotificationPage is one page of a customer's notifications, newest first.
type NotificationPage struct {
	Notifications []notification.Notification
	// NextPageToken is opaque; empty on the last page.
	NextPageToken string
}

// Store keeps the saga log by order and the notifications by customer.
// Every write is an idempotent upsert keyed by values derived from the event.
type Store interface {
	// PinOccurredAt returns the time event eventID of order orderID was
	// first recorded under, recording occurredAt when it is new. A producer
	// can emit one event (one id) twice with different times — its
	// transaction was published, then lost in a store crash, then redone — and
	// the log and the notification must hold it once.
	PinOccurredAt(ctx context.Context, orderID, eventID string, occurredAt time.Time) (time.Time, error)
	// RecordSagaEvent writes e into its order's log; writing it again
	// leaves one entry.
	RecordSagaEvent(ctx context.Context, e SagaEvent) error
	// SaveNotification writes n (one row per notification id) and reports
	// whether an earlier copy was already marked delivered. Saving again
	// never clears that mark.
	SaveNotification(ctx context.Context, n notification.Notification) (delivered bool, err error)
	// MarkDelivered records that n went out at the given time.
	MarkDelivered(ctx context.Context, n notification.Notification, at time.Time) error
	// ListNotifications returns up to pageSize of a customer's
	// notifications, newest first, from pageToken on (empty: the start).
	// A token the store did not issue for this customer gives ErrInvalidPageToken.
	ListNotifications(ctx context.Context, customerID string, pageSize int, pageToken string) (NotificationPage, error)
	// SagaLog returns an order's events, oldest first (ties by event id).
	SagaLog(ctx context.Context, orderID string) ([]SagaEvent, error)
}

// Sender delivers a notification to its customer. Delivery is at-least-once:
// a crash between sending and marking it delivered sends it again.
type Sender interface {
	Send(ctx context.Context, n notification.Notification) error
}

// Errors the ports map to API codes.
var (
	// ErrNotFound: nothing is recorded under the id asked for.
	ErrNotFound = errors.New("not found")
	// ErrInvalidPageToken: the token is not one this service issued for the query.
	ErrInvalidPageToken = errors.New("invalid page token")
)

// FieldError is a request field with a bad value.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Problem) }

// Application bundles the use cases.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands change state.
type Commands struct {
	RecordEvent RecordEventHandler
}

// Queries read state.
type Queries struct {
	ListNotifications ListNotificationsHandler
	GetSagaLog        GetSagaLogHandler
}

// Replaying returns the application with RecordEvent in replay mode, for
// rebuilding a read model from recorded or re-read events: the same handler
// writes the same saga log and notification rows, but nothing reaches a
// customer (the Sender is never called) and nothing is published.
func (a Application) Replaying() Application {
	a.Commands.RecordEvent.replaying = true
	return a
}

// New wires the use cases to their dependencies; clk stamps deliveries.
func New(store Store, sender Sender, clk clock.Clock) Application {
	return Application{
		Commands: Commands{RecordEvent: RecordEventHandler{store: store, sender: sender, clock: clk}},
		Queries: Queries{
			ListNotifications: ListNotificationsHandler{store: store},
			GetSagaLog:        GetSagaLogHandler{store: store},
		},
	}
}

// Model is every row of a notification read model, for comparing a rebuilt
// one with the live one. Rows come sorted by their keys.
type Model struct {
	SagaLog       []SagaEvent
	Notifications []StoredNotification
	EventTimes    []EventTime
}

// StoredNotification is a notification row with its delivery mark.
type StoredNotification struct {
	notification.Notification
	Delivered bool
}

// EventTime is a saga_event_times row: the time an event was pinned under.
type EventTime struct {
	OrderID    string
	EventID    string
	OccurredAt time.Time
}

// SortModel puts m's rows in key order (order, time, event id; customer,
// send time, notification id), so two snapshots compare row by row.
func SortModel(m *Model) {
	slices.SortFunc(m.SagaLog, func(a, b SagaEvent) int {
		return cmp.Or(strings.Compare(a.OrderID, b.OrderID), a.OccurredAt.Compare(b.OccurredAt), strings.Compare(a.EventID, b.EventID))
	})
	slices.SortFunc(m.Notifications, func(a, b StoredNotification) int {
		return cmp.Or(strings.Compare(a.CustomerID, b.CustomerID), a.SendTime.Compare(b.SendTime), strings.Compare(a.ID, b.ID))
	})
	slices.SortFunc(m.EventTimes, func(a, b EventTime) int {
		return cmp.Or(strings.Compare(a.OrderID, b.OrderID), strings.Compare(a.EventID, b.EventID))
	})
}
