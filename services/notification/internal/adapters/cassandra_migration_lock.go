package adapters

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// MigrationLockConfig tunes the migration lock. Zero values take the defaults.
type MigrationLockConfig struct {
	// Wait bounds how long AcquireMigrationLock waits (default MigrationLockWait).
	Wait time.Duration
	// TTL is how long the lock row lives without a heartbeat (default 30s): a
	// holder killed mid-migration blocks the others at most this long.
	TTL time.Duration
	// Poll is the wait between attempts to take a held lock (default 250ms).
	Poll time.Duration
}

func (c MigrationLockConfig) withDefaults() MigrationLockConfig {
	if c.Wait <= 0 {
		c.Wait = MigrationLockWait
	}
	if c.TTL < 3*time.Second { // whole seconds, and room for heartbeats at TTL/3
		c.TTL = 30 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = 250 * time.Millisecond
	}
	return c
}

// migrationLockRow is the one row of schema_migration_lock the lock uses.
const migrationLockRow = "migrate"

// MigrationLock is a held keyspace migration lock: a row of
// schema_migration_lock inserted with IF NOT EXISTS (a Paxos round, so two
// processes cannot both insert it) and a TTL, kept alive by a heartbeat that
// is itself conditional on this holder's owner id, and deleted on Release.
// A holder that dies leaves the row to expire after TTL.
type MigrationLock struct {
	session *gocql.Session
	owner   string
	ttl     time.Duration

	stop     chan struct{}
	done     chan struct{}
	lostOnce sync.Once
	lost     chan struct{} // closed when a heartbeat found the row not ours
	lostErr  error
}

// AcquireMigrationLock takes the keyspace's migration lock, waiting at most
// cfg.Wait for another holder to release it (or its row to expire).
func AcquireMigrationLock(ctx context.Context, session *gocql.Session, cfg MigrationLockConfig) (*MigrationLock, error) {
	cfg = cfg.withDefaults()
	// Concurrent CREATE TABLE IF NOT EXISTS of one table is safe on one node;
	// it is the only schema change made before the lock is held.
	if err := session.Query(`CREATE TABLE IF NOT EXISTS schema_migration_lock (
		name text PRIMARY KEY, owner text, acquired_at timestamp)`).ExecContext(ctx); err != nil {
		return nil, fmt.Errorf("cassandra: create schema_migration_lock: %w", err)
	}
	owner := lockOwnerID()
	deadline := time.Now().Add(cfg.Wait)
	for {
		existing := map[string]any{}
		applied, err := session.Query(`INSERT INTO schema_migration_lock (name, owner, acquired_at) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?`,
			migrationLockRow, owner, time.Now().UTC(), int(cfg.TTL.Seconds())).
			SerialConsistency(gocql.Serial).MapScanCASContext(ctx, existing)
		// A timed-out LWT may have applied: the next attempt reads the row
		// back and finds its own owner id.
		if err == nil && (applied || existing["owner"] == owner) {
			l := &MigrationLock{session: session, owner: owner, ttl: cfg.TTL,
				stop: make(chan struct{}), done: make(chan struct{}), lost: make(chan struct{})}
			go l.heartbeat()
			return l, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cassandra: migration lock: %w", ctx.Err())
		}
		// Only a timeout (unknown outcome) is worth another attempt; any other
		// error (unavailable replicas, bad consistency setting) is returned
		// as it is, and the process's restart tries again.
		var timeout *gocql.RequestErrWriteTimeout
		if err != nil && !errors.As(err, &timeout) && !errors.Is(err, gocql.ErrTimeoutNoResponse) {
			return nil, fmt.Errorf("cassandra: migration lock: %w", err)
		}
		if time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("cassandra: migration lock not taken within %s: %w", cfg.Wait, err)
			}
			return nil, fmt.Errorf("cassandra: migration lock (table schema_migration_lock, row %q) still held by %v since %v after %s: "+
				"another process is migrating; a dead holder's row expires after its TTL", migrationLockRow, existing["owner"], existing["acquired_at"], cfg.Wait)
		}
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Poll):
		}
	}
}

// lockOwnerID names this holder in the lock row: host, pid and a random part
// (two processes in one pod, or a restarted pid, must not match).
func lockOwnerID() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// heartbeat renews the row's TTL every TTL/3 while it is still ours.
func (l *MigrationLock) heartbeat() {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		applied, err := l.session.Query(`UPDATE schema_migration_lock USING TTL ? SET owner = ?, acquired_at = ? WHERE name = ? IF owner = ?`,
			int(l.ttl.Seconds()), l.owner, time.Now().UTC(), migrationLockRow, l.owner).
			SerialConsistency(gocql.Serial).MapScanCASContext(ctx, map[string]any{})
		cancel()
		switch {
		case err != nil:
			// Unknown outcome: try again next tick; the row outlives two misses.
		case !applied:
			l.markLost(errors.New("cassandra: migration lock lost: its row expired or was taken over (a heartbeat came too late)"))
			return
		}
	}
}

func (l *MigrationLock) markLost(err error) {
	l.lostOnce.Do(func() { l.lostErr = err; close(l.lost) })
}

// Context returns ctx cancelled when the lock is lost, so a migration stops
// its statements rather than run on beside the next holder.
func (l *MigrationLock) Context(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-l.lost:
			cancel(l.lostErr)
		case <-l.done:
			select {
			case <-l.lost: // the heartbeat ends right after a loss
				cancel(l.lostErr)
			default:
				cancel(nil)
			}
		case <-ctx.Done():
		}
	}()
	return ctx
}

// Release stops the heartbeat and deletes the row if it is still ours. It
// returns the loss error when the lock was lost while held.
func (l *MigrationLock) Release() error {
	close(l.stop)
	<-l.done
	select {
	case <-l.lost:
		return l.lostErr
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Failing to delete only delays the next migrator by the row's TTL.
	_, _ = l.session.Query(`DELETE FROM schema_migration_lock WHERE name = ? IF owner = ?`, migrationLockRow, l.owner).
		SerialConsistency(gocql.Serial).MapScanCASContext(ctx, map[string]any{})
	return nil
}
