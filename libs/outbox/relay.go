package outbox

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/sagasuite/sagasuite/libs/bus"
)

// Publisher is what the relay publishes through (a *bus.Producer).
type Publisher = bus.Publisher

// RelayConfig tunes a Relay. Zero values take the defaults.
type RelayConfig struct {
	// BatchSize is the most rows published per pass (default 256).
	BatchSize int
	// PollInterval is how often the relay looks for rows when nobody calls
	// Notify (default 100ms): rows written by other instances of the service.
	PollInterval time.Duration
	// LockName, when set, makes only one relay of the service active at a time
	// (MySQL GET_LOCK on a connection held while active); others wait as
	// standbys. Two active relays could publish one key's events out of order.
	// MySQL locks are server-wide, so the relay scopes the name to its
	// database: suites sharing a server (tests, tenants) do not wait on each
	// other. A pool of one connection (the dev stack's in-process MySQL) takes
	// no lock: it would hold the only connection, and there is one process.
	LockName string
	// Retention is how long sent rows are kept before being purged (default 24h).
	Retention time.Duration
	Logger    *slog.Logger

	// afterPublish runs between publishing a batch and marking it sent; tests
	// use it to crash the relay at the worst moment.
	afterPublish func(ids []uint64) error
}

// Relay publishes committed outbox rows in id order and marks them sent.
type Relay struct {
	lock    string // LockName scoped to the database, set when the lock is taken
	db      *sql.DB
	pub     Publisher
	cfg     RelayConfig
	wake    chan struct{}
	metrics relayMetrics
}

// NewRelay makes a relay over db's outbox table.
func NewRelay(db *sql.DB, pub Publisher, cfg RelayConfig) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Relay{db: db, pub: pub, cfg: cfg, wake: make(chan struct{}, 1), metrics: newRelayMetrics()}
}

// Notify wakes the relay now: call it after committing outbox rows so events
// leave without waiting for the next poll. It never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx is cancelled. Publish or database errors are logged
// and retried with backoff; rows are marked sent only after Kafka acknowledged
// them, so a crash in between republishes them (consumers' inboxes drop copies).
func (r *Relay) Run(ctx context.Context) error {
	var lockConn *sql.Conn
	if r.cfg.LockName != "" && r.db.Stats().MaxOpenConnections != 1 {
		var err error
		if lockConn, err = r.acquireLock(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while standing by
			}
			return err
		}
		defer r.releaseLock(lockConn)
	}
	// The backlog gauge is read at scrape time, while this relay runs.
	if reg, err := r.metrics.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		n, err := r.Backlog(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(r.metrics.backlog, n)
		return nil
	}, r.metrics.backlog); err == nil {
		defer reg.Unregister()
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 50*time.Millisecond, 5*time.Second
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	lastPurge := time.Now()
	for {
		n, err := r.Flush(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			r.cfg.Logger.ErrorContext(ctx, "outbox relay", "error", err)
			if !wait(ctx, bo.NextBackOff()) {
				return nil
			}
			continue
		}
		bo.Reset()
		if n == r.cfg.BatchSize {
			continue // more is waiting
		}
		if time.Since(lastPurge) > time.Minute {
			lastPurge = time.Now()
			if lockConn != nil {
				if err := r.checkLock(ctx, lockConn); err != nil {
					return err
				}
			}
			if err := r.purge(ctx); err != nil {
				r.cfg.Logger.WarnContext(ctx, "outbox purge", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-poll.C:
		}
	}
}

func wait(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// Flush publishes one batch of unsent rows and marks them sent, returning how
// many it published.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	rows, err := r.db.QueryContext(ctx,
		"SELECT id, topic, msg_key, headers, payload FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?", r.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	var ids []uint64
	var msgs []bus.Message
	for rows.Next() {
		var (
			id      uint64
			m       bus.Message
			headers []byte
		)
		if err := rows.Scan(&id, &m.Topic, &m.Key, &headers, &m.Value); err != nil {
			rows.Close()
			return 0, fmt.Errorf("scan outbox row: %w", err)
		}
		if err := json.Unmarshal(headers, &m.Headers); err != nil {
			rows.Close()
			return 0, fmt.Errorf("outbox row %d: decode headers: %w", id, err)
		}
		ids = append(ids, id)
		msgs = append(msgs, m)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	start := time.Now()
	if err := r.pub.Publish(ctx, msgs...); err != nil {
		return 0, err
	}
	if r.cfg.afterPublish != nil {
		if err := r.cfg.afterPublish(ids); err != nil {
			return 0, err
		}
	}
	if err := r.markSent(ctx, ids); err != nil {
		return 0, err
	}
	r.metrics.published.Add(ctx, int64(len(ids)))
	r.metrics.batchDuration.Record(ctx, time.Since(start).Seconds())
	return len(ids), nil
}

func (r *Relay) markSent(ctx context.Context, ids []uint64) error {
	q := "UPDATE outbox SET sent_at = ? WHERE id IN (?" + strings.Repeat(", ?", len(ids)-1) + ")"
	args := make([]any, 0, len(ids)+1)
	args = append(args, time.Now().UTC())
	for _, id := range ids {
		args = append(args, id)
	}
	if _, err := r.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("mark %d outbox rows sent: %w", len(ids), err)
	}
	return nil
}

func (r *Relay) purge(ctx context.Context) error {
	_, err := r.db.ExecContext(ctx, "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ? LIMIT 10000",
		time.Now().UTC().Add(-r.cfg.Retention))
	return err
}

// Backlog counts rows not yet sent (the outbox backlog metric and probes).
func (r *Relay) Backlog(ctx context.Context) (int64, error) {
	var n int64
	err := r.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").Scan(&n)
	return n, err
}

// acquireLock blocks until this relay holds the named lock, on a connection
// it keeps for as long as it runs.
func (r *Relay) acquireLock(ctx context.Context) (*sql.Conn, error) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("relay lock connection: %w", err)
	}
	var database sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&database); err != nil {
		conn.Close()
		return nil, fmt.Errorf("relay lock: read database name: %w", err)
	}
	r.lock = scopedLockName(r.cfg.LockName, database.String)
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 1)", r.lock).Scan(&got); err != nil {
			conn.Close()
			return nil, fmt.Errorf("relay lock %q: %w", r.cfg.LockName, err)
		}
		if got.Valid && got.Int64 == 1 {
			r.cfg.Logger.InfoContext(ctx, "outbox relay active", "lock", r.lock)
			return conn, nil
		}
		if ctx.Err() != nil {
			conn.Close()
			return nil, ctx.Err()
		}
	}
}

// scopedLockName is name/database, hashed to fit MySQL's 64-character limit.
func scopedLockName(name, database string) string {
	scoped := name + "/" + database
	if len(scoped) <= 64 {
		return scoped
	}
	sum := sha256.Sum256([]byte(scoped))
	return name[:min(len(name), 31)] + "/" + hex.EncodeToString(sum[:16])
}

// releaseLock gives the lock up before the connection goes back to the pool
// (sql.Conn.Close does not close it, so the lock would outlive the relay).
func (r *Relay) releaseLock(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, "DO RELEASE_LOCK(?)", r.lock); err != nil {
		// Drop the connection itself: the server then frees the lock.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	conn.Close()
}

// checkLock fails when the lock's connection was lost (and the lock with it):
// another relay may be active now, so this one must stop and be restarted.
func (r *Relay) checkLock(ctx context.Context, conn *sql.Conn) error {
	var mine sql.NullInt64
	err := conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", r.lock).Scan(&mine)
	if err != nil || !mine.Valid || mine.Int64 != 1 {
		return fmt.Errorf("relay lock %q lost: %v", r.lock, err)
	}
	return nil
}

type relayMetrics struct {
	meter         metric.Meter
	published     metric.Int64Counter
	batchDuration metric.Float64Histogram
	backlog       metric.Int64ObservableGauge
}

func newRelayMetrics() relayMetrics {
	meter := otel.Meter("github.com/sagasuite/sagasuite/libs/outbox")
	published, _ := meter.Int64Counter("sagasuite.outbox.published", metric.WithDescription("outbox rows published"))
	d, _ := meter.Float64Histogram("sagasuite.outbox.batch.duration", metric.WithUnit("s"),
		metric.WithDescription("publish + mark-sent time of one relay batch"))
	backlog, _ := meter.Int64ObservableGauge("sagasuite.outbox.backlog",
		metric.WithDescription("outbox rows committed but not yet published"))
	return relayMetrics{meter: meter, published: published, batchDuration: d, backlog: backlog}
}
