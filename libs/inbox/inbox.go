// Package inbox makes event consumers idempotent: Claim records an event id
// for a consumer in the same transaction as the effect, so a redelivered or
// replayed event finds its id taken and changes nothing.
package inbox

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/sagasuite/sagasuite/libs/sqlstore"
)

// Claim records that consumer processes eventID in tx. It returns false when
// the event was already processed (the caller then skips the effect and
// commits nothing new). Call it first in the transaction: a concurrent copy of
// the same event then waits on the row lock and sees the id taken once the
// first commits.
func Claim(ctx context.Context, tx *sql.Tx, consumer, eventID string, now time.Time) (bool, error) {
	_, err := tx.ExecContext(ctx, "INSERT INTO inbox (consumer, event_id, processed_at) VALUES (?, ?, ?)",
		consumer, eventID, now.UTC())
	switch {
	case err == nil:
		return true, nil
	case sqlstore.IsDuplicateKey(err):
		return false, nil
	default:
		return false, fmt.Errorf("inbox claim %s/%s: %w", consumer, eventID, err)
	}
}

// Processed reports whether consumer already processed eventID (read-only,
// for tools and tests).
func Processed(ctx context.Context, db *sql.DB, consumer, eventID string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM inbox WHERE consumer = ? AND event_id = ?", consumer, eventID).Scan(&n)
	return n > 0, err
}
