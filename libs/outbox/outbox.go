// Package outbox is the transactional outbox for MySQL: Add writes the events a
// state change causes in that change's own transaction, and a Relay publishes
// committed rows to Kafka and marks them sent. There is no moment where the
// state is committed and its events can be lost, or the other way round.
//
// Ordering and gaps. The relay does not keep a high-water mark of ids: ids are
// taken at insert but rows become visible at commit, so a transaction that
// commits late leaves a gap below the mark that a mark-based relay would skip
// for ever (the auto-increment gap bug). Instead each pass reads the unsent
// rows in id order, whatever it published before; a row committed late is
// simply picked up by the next pass. Per key (order id) id order is commit
// order as long as writers of one key serialize on a lock of that key — the
// aggregate row they update FOR UPDATE — which every service's repository does.
package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/libs/bus"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// Add inserts msgs into the outbox inside tx. eventID makes a row unique, so
// writing the same event twice fails the transaction instead of duplicating it.
func Add(ctx context.Context, tx *sql.Tx, now time.Time, msgs ...bus.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString("INSERT INTO outbox (event_id, topic, msg_key, headers, payload, created_at) VALUES ")
	args := make([]any, 0, len(msgs)*6)
	for i, m := range msgs {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?)")
		headers, err := json.Marshal(m.Headers)
		if err != nil {
			return fmt.Errorf("outbox: encode headers: %w", err)
		}
		eventID := m.Headers[bus.HeaderEventID]
		if eventID == "" {
			return fmt.Errorf("outbox: message for %s/%s has no %q header", m.Topic, m.Key, bus.HeaderEventID)
		}
		args = append(args, eventID, m.Topic, m.Key, headers, m.Value, now.UTC())
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("outbox: insert %d rows: %w", len(msgs), err)
	}
	return nil
}

// AddEnvelopes encodes envs (topic, key, headers with ctx's trace) and adds
// them to the outbox inside tx: what a handler or command calls with the
// events its state change caused.
func AddEnvelopes(ctx context.Context, tx *sql.Tx, now time.Time, envs ...*eventsv1.Envelope) error {
	msgs := make([]bus.Message, 0, len(envs))
	for _, env := range envs {
		m, err := bus.EncodeEnvelope(ctx, env)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	return Add(ctx, tx, now, msgs...)
}
