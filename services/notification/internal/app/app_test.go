package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters"
	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
)

// fakeStore records calls; the real stores are proven by the adapters'
// contract test.
type fakeStore struct {
	log        []app.SagaEvent
	saved      []notification.Notification
	delivered  map[string]time.Time
	failRecord error
	failSave   error
	listed     struct {
		size  int
		token string
	}
}

func (s *fakeStore) PinOccurredAt(_ context.Context, _, _ string, at time.Time) (time.Time, error) {
	return at, nil
}

func (s *fakeStore) RecordSagaEvent(_ context.Context, e app.SagaEvent) error {
	if s.failRecord != nil {
		return s.failRecord
	}
	s.log = append(s.log, e)
	return nil
}

func (s *fakeStore) SaveNotification(_ context.Context, n notification.Notification) (bool, error) {
	if s.failSave != nil {
		return false, s.failSave
	}
	s.saved = append(s.saved, n)
	_, ok := s.delivered[n.ID]
	return ok, nil
}

func (s *fakeStore) MarkDelivered(_ context.Context, n notification.Notification, at time.Time) error {
	if s.delivered == nil {
		s.delivered = map[string]time.Time{}
	}
	s.delivered[n.ID] = at
	return nil
}

func (s *fakeStore) ListNotifications(_ context.Context, _ string, size int, token string) (app.NotificationPage, error) {
	s.listed.size, s.listed.token = size, token
	return app.NotificationPage{}, nil
}

func (s *fakeStore) SagaLog(_ context.Context, orderID string) ([]app.SagaEvent, error) {
	var out []app.SagaEvent
	for _, e := range s.log {
		if e.OrderID == orderID {
			out = append(out, e)
		}
	}
	return out, nil
}

type fakeSender struct {
	sent []notification.Notification
	fail error
}

func (s *fakeSender) Send(_ context.Context, n notification.Notification) error {
	if s.fail != nil {
		return s.fail
	}
	s.sent = append(s.sent, n)
	return nil
}

var now = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func command(t notification.EventType) app.RecordEvent {
	return app.RecordEvent{
		Event: notification.Event{
			ID: "5b1f0d3e-3333-5000-8000-000000000003", Type: t,
			OrderID: "0192f3a4-1111-7000-8000-000000000001", CustomerID: "0192f3a4-2222-7000-8000-000000000002",
			OccurredAt: time.Date(2026, 11, 24, 9, 30, 15, 123456789, time.UTC),
		},
		Producer: "order", CausationID: "0192f3a4-4444-7000-8000-000000000004", Envelope: []byte{1, 2, 3},
	}
}

func TestRecordEvent(t *testing.T) {
	boom := errors.New("store down")
	smtpDown := errors.New("smtp down")
	tests := []struct {
		name          string
		cmd           app.RecordEvent
		store         *fakeStore
		sender        *fakeSender
		wantErr       error
		wantLog       int
		wantSaved     int
		wantSent      int
		wantDelivered int
	}{
		{name: "customer-facing: logged, saved, sent, marked", cmd: command(notification.OrderCompleted),
			store: &fakeStore{}, sender: &fakeSender{}, wantLog: 1, wantSaved: 1, wantSent: 1, wantDelivered: 1},
		{name: "a step in between: logged only", cmd: command("STOCK_RESERVED"),
			store: &fakeStore{}, sender: &fakeSender{}, wantLog: 1},
		{name: "redelivery of a delivered notification: rewritten, not sent again", cmd: command(notification.OrderCreated),
			store: &fakeStore{delivered: map[string]time.Time{
				notification.IDFor("5b1f0d3e-3333-5000-8000-000000000003"): now}},
			sender: &fakeSender{}, wantLog: 1, wantSaved: 1, wantDelivered: 1},
		{name: "sender fails: error, not marked, so the retry sends", cmd: command(notification.OrderCancelled),
			store: &fakeStore{}, sender: &fakeSender{fail: smtpDown}, wantErr: smtpDown,
			wantLog: 1, wantSaved: 1},
		{name: "log write fails: nothing sent", cmd: command(notification.OrderCompleted),
			store: &fakeStore{failRecord: boom}, sender: &fakeSender{}, wantErr: boom},
		{name: "notification write fails: nothing sent", cmd: command(notification.OrderCompleted),
			store: &fakeStore{failSave: boom}, sender: &fakeSender{}, wantErr: boom, wantLog: 1},
		{name: "invalid customer-facing event: nothing written", cmd: func() app.RecordEvent {
			c := command(notification.OrderCompleted)
			c.Event.CustomerID = ""
			return c
		}(), store: &fakeStore{}, sender: &fakeSender{}, wantErr: notification.ErrInvalidEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := app.New(tt.store, tt.sender, clock.NewManual(now))
			err := a.Commands.RecordEvent.Handle(context.Background(), tt.cmd)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Handle: %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Handle = %v, want %v", err, tt.wantErr)
			}
			if len(tt.store.log) != tt.wantLog || len(tt.store.saved) != tt.wantSaved ||
				len(tt.sender.sent) != tt.wantSent || len(tt.store.delivered) != tt.wantDelivered {
				t.Fatalf("log %d saved %d sent %d delivered %d; want %d %d %d %d",
					len(tt.store.log), len(tt.store.saved), len(tt.sender.sent), len(tt.store.delivered),
					tt.wantLog, tt.wantSaved, tt.wantSent, tt.wantDelivered)
			}
			if tt.wantLog == 1 {
				got := tt.store.log[0]
				if got.EventID != tt.cmd.Event.ID || got.Producer != "order" || got.CausationID != tt.cmd.CausationID ||
					string(got.Envelope) != string(tt.cmd.Envelope) || !got.OccurredAt.Equal(tt.cmd.Event.OccurredAt.Truncate(time.Millisecond)) {
					t.Fatalf("log entry %+v does not carry the event", got)
				}
			}
			if tt.wantSent == 1 && tt.store.delivered[tt.sender.sent[0].ID] != now {
				t.Fatalf("delivery not stamped with the injected clock: %v", tt.store.delivered)
			}
		})
	}
}

func TestListNotificationsPageSize(t *testing.T) {
	tests := []struct {
		size      int
		wantSize  int
		wantField string
	}{
		{0, app.DefaultPageSize, ""},
		{1, 1, ""},
		{app.MaxPageSize, app.MaxPageSize, ""},
		{app.MaxPageSize + 1, 0, "page_size"},
		{-1, 0, "page_size"},
	}
	for _, tt := range tests {
		store := &fakeStore{}
		a := app.New(store, &fakeSender{}, clock.NewManual(now))
		_, err := a.Queries.ListNotifications.Handle(context.Background(), app.ListNotifications{CustomerID: "c", PageSize: tt.size, PageToken: "tok"})
		if tt.wantField != "" {
			var fe *app.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField {
				t.Errorf("size %d: err %v, want a FieldError on %s", tt.size, err, tt.wantField)
			}
			continue
		}
		if err != nil || store.listed.size != tt.wantSize || store.listed.token != "tok" {
			t.Errorf("size %d: err %v, store asked for %d/%q, want %d/tok", tt.size, err, store.listed.size, store.listed.token, tt.wantSize)
		}
	}
	_, err := app.New(&fakeStore{}, &fakeSender{}, clock.NewManual(now)).Queries.ListNotifications.Handle(context.Background(), app.ListNotifications{})
	var fe *app.FieldError
	if !errors.As(err, &fe) || fe.Field != "customer_id" {
		t.Fatalf("no customer: %v", err)
	}
}

func TestGetSagaLog(t *testing.T) {
	store := &fakeStore{}
	a := app.New(store, &fakeSender{}, clock.NewManual(now))
	if _, err := a.Queries.GetSagaLog.Handle(context.Background(), "0192f3a4-1111-7000-8000-000000000001"); !errors.Is(err, app.ErrNotFound) {
		t.Fatalf("empty log: %v, want ErrNotFound", err)
	}
	if err := a.Commands.RecordEvent.Handle(context.Background(), command("STOCK_RESERVED")); err != nil {
		t.Fatal(err)
	}
	log, err := a.Queries.GetSagaLog.Handle(context.Background(), "0192f3a4-1111-7000-8000-000000000001")
	if err != nil || len(log) != 1 {
		t.Fatalf("log = %v, %v", log, err)
	}
	var fe *app.FieldError
	if _, err := a.Queries.GetSagaLog.Handle(context.Background(), ""); !errors.As(err, &fe) || fe.Field != "order_id" {
		t.Fatalf("no order id: %v", err)
	}
}

// An event redone by its producer after a lost commit comes again with the
// same id and a later time: the log holds it once, the customer is told once.
func TestRecordEventRedoneWithALaterTimeIsRecordedOnce(t *testing.T) {
	store := adapters.NewNotificationMemoryRepository()
	sender := &fakeSender{}
	a := app.New(store, sender, clock.NewManual(now))
	first := command(notification.OrderCompleted)
	redone := first
	redone.Event.OccurredAt = first.Event.OccurredAt.Add(9 * time.Second)
	redone.Envelope = []byte("the redone copy, with its later time")
	for _, cmd := range []app.RecordEvent{first, redone} {
		if err := a.Commands.RecordEvent.Handle(context.Background(), cmd); err != nil {
			t.Fatalf("Handle: %v", err)
		}
	}
	log, err := store.SagaLog(context.Background(), first.Event.OrderID)
	if err != nil || len(log) != 1 || !log[0].OccurredAt.Equal(first.Event.OccurredAt.Truncate(time.Millisecond)) {
		t.Fatalf("saga log %v, %v; want one entry at the first time", log, err)
	}
	if string(log[0].Envelope) != string(first.Envelope) {
		t.Fatalf("saga log entry holds envelope %q, want the first copy's (its time is the entry's)", log[0].Envelope)
	}
	page, err := store.ListNotifications(context.Background(), first.Event.CustomerID, 10, "")
	if err != nil || len(page.Notifications) != 1 || len(sender.sent) != 1 {
		t.Fatalf("notifications %v (sent %d), %v; want one", page.Notifications, len(sender.sent), err)
	}
}

// Replay mode writes what the live handler writes and calls no Sender; the
// notification is marked delivered at the replay clock, so a later
// redelivery on the rebuilt store sends nothing either.
func TestRecordEventReplayingSendsNothing(t *testing.T) {
	store, sender := &fakeStore{}, &fakeSender{}
	a := app.New(store, sender, clock.NewManual(now)).Replaying()
	for _, typ := range []notification.EventType{notification.OrderCreated, "STOCK_RESERVED"} {
		if err := a.Commands.RecordEvent.Handle(context.Background(), command(typ)); err != nil {
			t.Fatalf("Handle %s: %v", typ, err)
		}
	}
	if len(sender.sent) != 0 || len(store.log) != 2 || len(store.saved) != 1 || store.delivered[store.saved[0].ID] != now {
		t.Fatalf("replaying: sent %d, logged %d, saved %d, delivered %v; want 0, 2, 1, marked at %v",
			len(sender.sent), len(store.log), len(store.saved), store.delivered, now)
	}
}
