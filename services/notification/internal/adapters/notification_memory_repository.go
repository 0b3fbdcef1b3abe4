package adapters

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
)

// NotificationMemoryRepository is an app.Store held in memory: the stand-in
// for the embedded dev stack, which has no CQL server. It passes the same
// contract test as the Cassandra store but keeps nothing across restarts.
type NotificationMemoryRepository struct {
	mu            sync.Mutex
	log           map[string]map[sagaKey]app.SagaEvent // by order
	notifications map[string]map[noteKey]*storedNote   // by customer
	eventTimes    map[[2]string]time.Time              // first time by (order, event id)
}

type sagaKey struct {
	occurredAt int64 // unix ms
	eventID    string
}

type noteKey struct {
	sendTime int64 // unix ms
	id       string
}

type storedNote struct {
	n         notification.Notification
	delivered bool
}

var _ app.Store = (*NotificationMemoryRepository)(nil)

// NewNotificationMemoryRepository returns an empty store.
func NewNotificationMemoryRepository() *NotificationMemoryRepository {
	return &NotificationMemoryRepository{
		log:           map[string]map[sagaKey]app.SagaEvent{},
		notifications: map[string]map[noteKey]*storedNote{},
		eventTimes:    map[[2]string]time.Time{},
	}
}

// PinOccurredAt returns the event's first recorded time, recording at when new.
func (r *NotificationMemoryRepository) PinOccurredAt(_ context.Context, orderID, eventID string, at time.Time) (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := [2]string{orderID, eventID}
	if first, ok := r.eventTimes[key]; ok {
		return first, nil
	}
	at = at.UTC().Truncate(time.Millisecond)
	r.eventTimes[key] = at
	return at, nil
}

// RecordSagaEvent upserts e under (order, occurred_at ms, event id).
func (r *NotificationMemoryRepository) RecordSagaEvent(_ context.Context, e app.SagaEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Millisecond)
	e.Envelope = slices.Clone(e.Envelope)
	if r.log[e.OrderID] == nil {
		r.log[e.OrderID] = map[sagaKey]app.SagaEvent{}
	}
	r.log[e.OrderID][sagaKey{e.OccurredAt.UnixMilli(), e.EventID}] = e
	return nil
}

// SagaLog returns an order's events, oldest first, ties by event id.
func (r *NotificationMemoryRepository) SagaLog(_ context.Context, orderID string) ([]app.SagaEvent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]app.SagaEvent, 0, len(r.log[orderID]))
	for _, e := range r.log[orderID] {
		e.Envelope = slices.Clone(e.Envelope)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b app.SagaEvent) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		return strings.Compare(a.EventID, b.EventID)
	})
	return out, nil
}

// SaveNotification upserts n, keeping its delivery mark.
func (r *NotificationMemoryRepository) SaveNotification(_ context.Context, n notification.Notification) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n.SendTime = n.SendTime.UTC().Truncate(time.Millisecond)
	byKey := r.notifications[n.CustomerID]
	if byKey == nil {
		byKey = map[noteKey]*storedNote{}
		r.notifications[n.CustomerID] = byKey
	}
	key := noteKey{n.SendTime.UnixMilli(), n.ID}
	if s, ok := byKey[key]; ok {
		s.n = n
		return s.delivered, nil
	}
	byKey[key] = &storedNote{n: n}
	return false, nil
}

// MarkDelivered sets n's delivery mark.
func (r *NotificationMemoryRepository) MarkDelivered(_ context.Context, n notification.Notification, _ time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := noteKey{n.SendTime.UTC().Truncate(time.Millisecond).UnixMilli(), n.ID}
	s, ok := r.notifications[n.CustomerID][key]
	if !ok {
		return fmt.Errorf("memory store: mark unknown notification %s delivered", n.ID)
	}
	s.delivered = true
	return nil
}

// ListNotifications pages newest first (send time descending, then id
// ascending, as the Cassandra table clusters). The token holds the last key
// returned, so notifications added meanwhile do not shift the pages.
func (r *NotificationMemoryRepository) ListNotifications(_ context.Context, customerID string, pageSize int, pageToken string) (app.NotificationPage, error) {
	state, err := decodePageToken(customerID, pageToken)
	if err != nil {
		return app.NotificationPage{}, err
	}
	var after *noteKey
	if len(state) > 0 {
		if len(state) < 9 {
			return app.NotificationPage{}, fmt.Errorf("%w: bad position", app.ErrInvalidPageToken)
		}
		after = &noteKey{int64(binary.BigEndian.Uint64(state[:8])), string(state[8:])}
	}
	r.mu.Lock()
	keys := make([]noteKey, 0, len(r.notifications[customerID]))
	for k := range r.notifications[customerID] {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareNoteKeys)
	page := app.NotificationPage{Notifications: []notification.Notification{}}
	var last noteKey
	more := false
	for _, k := range keys {
		if after != nil && compareNoteKeys(k, *after) <= 0 {
			continue
		}
		if len(page.Notifications) == pageSize {
			more = true
			break
		}
		page.Notifications = append(page.Notifications, r.notifications[customerID][k].n)
		last = k
	}
	r.mu.Unlock()
	if more {
		state := binary.BigEndian.AppendUint64(nil, uint64(last.sendTime))
		page.NextPageToken = encodePageToken(customerID, append(state, last.id...))
	}
	return page, nil
}

// compareNoteKeys orders newest first, then by id.
func compareNoteKeys(a, b noteKey) int {
	if a.sendTime != b.sendTime {
		if a.sendTime > b.sendTime {
			return -1
		}
		return 1
	}
	return strings.Compare(a.id, b.id)
}
