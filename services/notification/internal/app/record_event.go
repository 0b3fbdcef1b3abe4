package app

import (
	"context"
	"fmt"
	"time"

	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/services/notification/internal/domain/notification"
)

// RecordEvent is one saga event as consumed from the bus.
type RecordEvent struct {
	Event       notification.Event
	Producer    string
	CausationID string
	Envelope    []byte
}

// RecordEventHandler logs every event in its order's saga log and tells the
// customer about the customer-facing ones.
type RecordEventHandler struct {
	store  Store
	sender Sender
	clock  clock.Clock
	// replaying rebuilds a read model from the log: the rows are written as
	// live, the Sender is never called (see Application.Replaying).
	replaying bool
}

// Handle is idempotent by event id: a redelivery rewrites the same log entry
// and notification row, and sends nothing when the notification was already
// marked delivered. An event that cannot make a notification wraps
// notification.ErrInvalidEvent (retrying cannot help).
func (h RecordEventHandler) Handle(ctx context.Context, cmd RecordEvent) error {
	e := cmd.Event
	entry := SagaEvent{
		OrderID:     e.OrderID,
		OccurredAt:  e.OccurredAt.UTC().Truncate(time.Millisecond),
		EventID:     e.ID,
		Type:        e.Type,
		Producer:    cmd.Producer,
		CausationID: cmd.CausationID,
		CustomerID:  e.CustomerID,
		Envelope:    cmd.Envelope,
	}
	// Decide first: an event that can never be told must not half-apply.
	if _, _, err := notification.For(e); err != nil {
		return err
	}
	pinned, err := h.store.PinOccurredAt(ctx, e.OrderID, e.ID, entry.OccurredAt)
	if err != nil {
		return fmt.Errorf("pin %s %s of order %s: %w", e.Type, e.ID, e.OrderID, err)
	}
	// A copy with another time is a re-emission: the entry belongs to the
	// copy that pinned the time, which records it itself (it comes first on
	// the partition, or again after a crash, since its offset is committed
	// only once it is recorded). Rewriting the entry here would replace the
	// recorded envelope with this copy's, whose time disagrees with the log's.
	reemitted := !pinned.Equal(entry.OccurredAt)
	e.OccurredAt, entry.OccurredAt = pinned.UTC(), pinned.UTC()
	n, tell, err := notification.For(e)
	if err != nil {
		return err
	}
	if !reemitted {
		if err := h.store.RecordSagaEvent(ctx, entry); err != nil {
			return fmt.Errorf("record %s %s of order %s: %w", e.Type, e.ID, e.OrderID, err)
		}
	}
	if !tell {
		return nil
	}
	delivered, err := h.store.SaveNotification(ctx, n)
	if err != nil {
		return fmt.Errorf("save notification %s for %s: %w", n.ID, e.ID, err)
	}
	if delivered {
		return nil
	}
	if h.replaying {
		// The live consumer told the customer when it first handled this
		// event; a rebuild must not tell them again. The row is still marked
		// delivered (at the replay clock, the record's time: the real send
		// time is known only to the live model), so a rebuilt model put in
		// service does not send on a later redelivery either.
		if err := h.store.MarkDelivered(ctx, n, h.clock.Now()); err != nil {
			return fmt.Errorf("mark notification %s delivered (replaying): %w", n.ID, err)
		}
		return nil
	}
	if err := h.sender.Send(ctx, n); err != nil {
		return fmt.Errorf("send notification %s: %w", n.ID, err)
	}
	if err := h.store.MarkDelivered(ctx, n, h.clock.Now()); err != nil {
		return fmt.Errorf("mark notification %s delivered: %w", n.ID, err)
	}
	return nil
}
