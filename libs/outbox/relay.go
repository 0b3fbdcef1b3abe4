package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
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
	// MaxAttempts is how often a row Kafka refuses permanently (see
	// PermanentPublishError) is tried before it is parked (default 10; with
	// the retry backoff below that is about 20 s, so a topic that is being
	// created is not mistaken for a missing one).
	MaxAttempts int
	// RetryBackoff is the first wait before a refused row is tried again; it
	// doubles per attempt up to MaxRetryBackoff (defaults 100ms, 5s). Other
	// keys' rows flow meanwhile.
	RetryBackoff, MaxRetryBackoff time.Duration
	// LockCheckInterval is how often an idle active relay proves it still
	// holds its lock (default 1s), so Status notices a lost lock without
	// traffic. A relay with rows to publish checks before every publish.
	LockCheckInterval time.Duration
	// LockIdleTimeout is the lock connection's wait_timeout (default 30s,
	// at least 3×LockCheckInterval): a holder that froze or lost its network
	// sends no FIN, so without it the server would keep the lock for its
	// default eight hours. The active relay talks on that connection at every
	// batch and every LockCheckInterval, so only a holder that cannot work
	// reaches it; the standby then takes over.
	LockIdleTimeout time.Duration
	// Retention is how long sent rows are kept before being purged (default 24h).
	Retention time.Duration
	Logger    *slog.Logger

	// afterPublish runs between publishing a batch and marking it sent; tests
	// use it to crash the relay at the worst moment.
	afterPublish func(ids []uint64) error
}

// Relay publishes committed outbox rows in id order and marks them sent.
//
// Outages. Run returns only when its context ends. A store or Kafka error is
// retried with capped backoff; a lost lock (its connection killed, the server
// restarted) makes the relay drop that connection, stand by and take the lock
// again, so a database restart never stops the service. Status says which of
// these the relay is in.
//
// Poison rows. A row Kafka refuses permanently is retried MaxAttempts times
// with backoff, then parked: parked_at and last_error are set, the
// sagasuite.outbox.parked counter grows, the reason is logged, and the
// relay goes on with the rows behind it. While a row waits for its next
// attempt, later rows of the same key (order) wait with it, so a key's events
// stay in order through a refusal that turns out transient (across topics a
// key's order is not promised, so a later row on another topic may already
// have gone out in the pass that found the refusal); once it is parked, the
// key's later rows are published. A parked event is almost always one that can
// never be delivered as it is, and holding the saga's later events for ever
// would leave the saga stuck (its deadline cancellation could never go
// out); consumers already take events late or out of order (a step after a
// cancel is compensated, not applied). An un-parked row (RetryParked) is
// published on the next pass, after the later events of its key.
type Relay struct {
	lock    string // LockName scoped to the database, set when the lock is taken
	db      *sql.DB
	pub     Publisher
	cfg     RelayConfig
	wake    chan struct{}
	metrics *Metrics
	status  StatusTracker

	// retryAt holds refused rows until their next attempt (only Run's
	// goroutine or a Flush caller touches it, never both at once).
	retryMu sync.Mutex
	retryAt map[uint64]time.Time
}

// NewRelay makes a relay over db's outbox table.
func NewRelay(db *sql.DB, pub Publisher, cfg RelayConfig) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 100 * time.Millisecond
	}
	if cfg.MaxRetryBackoff <= 0 {
		cfg.MaxRetryBackoff = 5 * time.Second
	}
	if cfg.LockCheckInterval <= 0 {
		cfg.LockCheckInterval = time.Second
	}
	if cfg.LockIdleTimeout <= 0 {
		cfg.LockIdleTimeout = 30 * time.Second
	}
	cfg.LockIdleTimeout = max(cfg.LockIdleTimeout, 3*cfg.LockCheckInterval, time.Second)
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Relay{db: db, pub: pub, cfg: cfg, wake: make(chan struct{}, 1), metrics: NewMetrics(),
		retryAt: map[uint64]time.Time{}}
}

// Notify wakes the relay now: call it after committing outbox rows so events
// leave without waiting for the next poll. It never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Status says whether the relay can work right now (readiness).
func (r *Relay) Status() Status { return r.status.Get() }

// RelayStatus implements Admin.
func (r *Relay) RelayStatus() Status { return r.Status() }

// Counts implements Admin.
func (r *Relay) Counts(ctx context.Context) (Gauges, error) { return r.gauges(ctx) }

// errLockLost ends an active spell: the relay stands by and takes the lock again.
var errLockLost = errors.New("relay lock lost")

// Run publishes until ctx is cancelled, and returns nil then; nothing else
// ends it. Publish or database errors are logged and retried with backoff;
// rows are marked sent only after Kafka acknowledged them, so a crash in
// between republishes them (consumers' inboxes drop copies).
func (r *Relay) Run(ctx context.Context) error {
	defer r.status.Set(StateStopped, nil)
	if reg, err := r.metrics.RegisterGauges(r.gauges); err == nil {
		defer func() { _ = reg.Unregister() }()
	}
	locking := r.cfg.LockName != "" && r.db.Stats().MaxOpenConnections != 1
	bo := newBackoff()
	for ctx.Err() == nil {
		var lockConn *sql.Conn
		if locking {
			var err error
			if lockConn, err = r.acquireLock(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				r.status.Set(StateFailing, err)
				r.cfg.Logger.ErrorContext(ctx, "outbox relay: taking the relay lock", "error", err)
				wait(ctx, bo.NextBackOff())
				continue
			}
		}
		bo.Reset()
		r.status.Set(StateActive, nil)
		err := r.serve(ctx, lockConn)
		if lockConn != nil {
			r.releaseLock(lockConn, err != nil)
		}
		if ctx.Err() != nil {
			break
		}
		// Only a lost lock gets here: stand by and compete for it again.
		r.status.Set(StateStandby, err)
		r.cfg.Logger.WarnContext(ctx, "outbox relay: lock lost, standing by to take it again", "error", err)
		wait(ctx, bo.NextBackOff())
	}
	return nil
}

// serve publishes while this relay holds the lock (lockConn, nil when it
// takes none); it returns errLockLost, or nil when ctx ends.
func (r *Relay) serve(ctx context.Context, lockConn *sql.Conn) error {
	var checkLock func(context.Context) error
	if lockConn != nil {
		checkLock = func(ctx context.Context) error { return r.checkLock(ctx, lockConn) }
	}
	bo := newBackoff()
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	lastPurge, lastCheck := time.Now(), time.Now()
	for {
		n, err := r.flush(ctx, checkLock)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errLockLost):
			return err
		case err != nil:
			r.status.Set(StateFailing, err)
			r.cfg.Logger.ErrorContext(ctx, "outbox relay", "error", err)
			wait(ctx, bo.NextBackOff())
			continue
		}
		r.status.Set(StateActive, nil)
		bo.Reset()
		if n > 0 {
			lastCheck = time.Now() // flush checked the lock before publishing
		}
		if n == r.cfg.BatchSize {
			continue // more is waiting
		}
		if checkLock != nil && time.Since(lastCheck) >= r.cfg.LockCheckInterval {
			lastCheck = time.Now()
			if err := checkLock(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		if time.Since(lastPurge) > time.Minute {
			lastPurge = time.Now()
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

func newBackoff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 50*time.Millisecond, 5*time.Second
	return bo
}

func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// outboxRow is one unsent row as the relay reads it.
type outboxRow struct {
	id       uint64
	attempts int
	msg      bus.Message
	badRow   error // the row itself cannot be published (undecodable headers)
}

// Flush publishes one batch of unsent rows and marks them sent, returning how
// many it published. Refused rows are counted and parked as Run does.
func (r *Relay) Flush(ctx context.Context) (int, error) { return r.flush(ctx, nil) }

// flush is one pass. checkLock, when set, runs right before the publish: the
// relay publishes only rows it read while it could prove it held the lock.
//
// The window: the check proves the lock was ours at that instant. If the
// lock's connection dies between the check and the end of the publish call,
// a standby can take the lock and publish the same oldest unsent rows at the
// same time. Each relay publishes a key's rows in id order and both start
// from the oldest unsent row, so the first copy of every event still arrives
// in order; the rest are duplicates, which the consumers' inboxes drop. The
// window is one publish call long; a relay that keeps running notices the
// loss at its next check and stands by.
func (r *Relay) flush(ctx context.Context, checkLock func(context.Context) error) (int, error) {
	rows, err := r.readBatch(ctx)
	if err != nil {
		return 0, err
	}
	batch := r.selectDue(rows)
	if len(batch) == 0 {
		return 0, nil
	}
	var (
		toPublish []outboxRow
		msgs      []bus.Message
		refused   = map[uint64]error{}
	)
	for _, row := range batch {
		if row.badRow != nil {
			refused[row.id] = row.badRow
			continue
		}
		toPublish = append(toPublish, row)
		msgs = append(msgs, row.msg)
	}
	if len(msgs) > 0 {
		if err := r.durabilityBarrier(ctx); err != nil {
			return 0, err
		}
	}
	// The lock check comes last before the publish, after the barrier's
	// commit (which can stall), to keep the window below as short as it gets.
	if len(msgs) > 0 && checkLock != nil {
		if err := checkLock(ctx); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	// A stop lets a publish in flight finish (bounded): cut short, its outcome
	// is unknown — the broker may have the records while we do not mark them —
	// and the next active relay publishes them again.
	pubCtx, cancelPub := withStopGrace(ctx, publishStopGrace)
	errs := PublishEach(pubCtx, r.pub, msgs)
	cancelPub()
	var (
		sent      []uint64
		transient error
	)
	for i, row := range toPublish {
		switch {
		case errs[i] == nil:
			sent = append(sent, row.id)
		case errors.Is(errs[i], ErrHeldBehind):
			// waits for the refused row ahead of it (selectDue holds it next pass)
		case PermanentPublishError(errs[i]):
			refused[row.id] = errs[i]
		default:
			transient = errs[i]
		}
	}
	if len(sent) > 0 {
		if r.cfg.afterPublish != nil {
			if err := r.cfg.afterPublish(sent); err != nil {
				return 0, err
			}
		}
		// What went out is recorded even when ctx ended meanwhile (a
		// graceful stop in a rolling update), or the next active relay
		// publishes the batch again.
		markCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markSentTimeout)
		err := r.markSent(markCtx, sent)
		cancel()
		if err != nil {
			return 0, err
		}
		r.metrics.Published(ctx, len(sent), time.Since(start))
	}
	for _, row := range batch {
		if reason, ok := refused[row.id]; ok {
			if err := r.refuse(ctx, row, reason); err != nil {
				return len(sent), err
			}
		}
	}
	if transient != nil {
		return len(sent), fmt.Errorf("publish outbox rows: %w", transient)
	}
	return len(sent), nil
}

// durabilityBarrier commits a one-row write before a batch is published.
// InnoDB makes a commit visible to other sessions before its redo log is
// flushed, so a relay could read and publish rows of a transaction that a
// server crash then loses: a MariaDB kill -9 under load did exactly that — a
// PAYMENT_PROCESSED was consumed downstream while its transaction was rolled
// away, and the redone charge emitted the same event again with a later time.
// The redo log is flushed in order, so once this commit returns (durable with
// innodb_flush_log_at_trx_commit=1) every transaction the relay could see is
// durable too. One small commit per published batch.
func (r *Relay) durabilityBarrier(ctx context.Context) error {
	now := time.Now().UTC()
	if _, err := r.db.ExecContext(ctx,
		"INSERT INTO outbox_barrier (id, at) VALUES (1, ?) ON DUPLICATE KEY UPDATE at = ?", now, now); err != nil {
		return fmt.Errorf("outbox durability barrier: %w", err)
	}
	return nil
}

func (r *Relay) readBatch(ctx context.Context) ([]outboxRow, error) {
	rows, err := r.db.QueryContext(ctx,
		"SELECT id, topic, msg_key, headers, payload, attempts FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL ORDER BY id LIMIT ?",
		r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var (
			row     outboxRow
			headers []byte
		)
		if err := rows.Scan(&row.id, &row.msg.Topic, &row.msg.Key, &headers, &row.msg.Value, &row.attempts); err != nil {
			return nil, fmt.Errorf("scan outbox row: %w", err)
		}
		if err := json.Unmarshal(headers, &row.msg.Headers); err != nil {
			row.badRow = fmt.Errorf("outbox row %d: undecodable headers: %w", row.id, err)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// selectDue keeps the rows to try now, in id order: not a row waiting for
// its next attempt, nor any later row of that row's key (per-key order).
func (r *Relay) selectDue(rows []outboxRow) (due []outboxRow) {
	r.retryMu.Lock()
	defer r.retryMu.Unlock()
	now := time.Now()
	heldKeys := map[string]bool{}
	for _, row := range rows {
		if heldKeys[row.msg.Key] {
			continue
		}
		if at, ok := r.retryAt[row.id]; ok && now.Before(at) {
			heldKeys[row.msg.Key] = true
			continue
		}
		due = append(due, row)
	}
	return due
}

// refuse counts a permanent refusal of row; at MaxAttempts it parks it.
func (r *Relay) refuse(ctx context.Context, row outboxRow, reason error) error {
	attempts := row.attempts + 1
	msg := truncate(reason.Error(), 1024)
	if attempts < r.cfg.MaxAttempts && row.badRow == nil {
		if _, err := r.db.ExecContext(ctx, "UPDATE outbox SET attempts = ?, last_error = ? WHERE id = ?", attempts, msg, row.id); err != nil {
			return fmt.Errorf("count refusal of outbox row %d: %w", row.id, err)
		}
		delay := r.cfg.RetryBackoff << min(attempts-1, 20)
		delay = min(delay, r.cfg.MaxRetryBackoff)
		r.retryMu.Lock()
		r.retryAt[row.id] = time.Now().Add(delay)
		r.retryMu.Unlock()
		r.cfg.Logger.WarnContext(ctx, "outbox relay: Kafka refused a row, will retry", "id", row.id, "event_id", row.msg.Headers[bus.HeaderEventID],
			"topic", row.msg.Topic, "key", row.msg.Key, "attempt", attempts, "max_attempts", r.cfg.MaxAttempts, "retry_in", delay, "error", reason)
		return nil
	}
	if _, err := r.db.ExecContext(ctx, "UPDATE outbox SET attempts = ?, last_error = ?, parked_at = ? WHERE id = ?",
		attempts, msg, time.Now().UTC(), row.id); err != nil {
		return fmt.Errorf("park outbox row %d: %w", row.id, err)
	}
	r.retryMu.Lock()
	delete(r.retryAt, row.id)
	r.retryMu.Unlock()
	r.metrics.Parked(ctx, row.msg.Topic)
	r.cfg.Logger.ErrorContext(ctx, "outbox relay: row parked, the rows behind it go on (sagactl outbox list|retry)",
		"id", row.id, "event_id", row.msg.Headers[bus.HeaderEventID], "type", row.msg.Headers[bus.HeaderType],
		"topic", row.msg.Topic, "key", row.msg.Key, "attempts", attempts, "reason", reason)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// publishStopGrace bounds how long a stopping relay waits for its publish in
// flight (well inside a service's shutdown timeout).
const publishStopGrace = 5 * time.Second

// withStopGrace is ctx's values with a cancellation that comes grace after
// ctx's own, so work already under way can finish when ctx ends.
func withStopGrace(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	detached, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return detached, func() { stop(); cancel() }
}

// markSentTimeout bounds recording a published batch after the relay's
// context ended.
const markSentTimeout = 10 * time.Second

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
	r.retryMu.Lock()
	for _, id := range ids {
		delete(r.retryAt, id)
	}
	r.retryMu.Unlock()
	return nil
}

func (r *Relay) purge(ctx context.Context) error {
	_, err := r.db.ExecContext(ctx, "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ? LIMIT 10000",
		time.Now().UTC().Add(-r.cfg.Retention))
	return err
}

// Backlog counts rows waiting to be published (parked rows not included).
func (r *Relay) Backlog(ctx context.Context) (int64, error) {
	var n int64
	err := r.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL").Scan(&n)
	return n, err
}

// oldestUnsent is when the oldest unsent, unparked row was written; zero
// when none waits. Its age is the backlog's health: 10 rows waiting is fine,
// a row waiting for a minute is not.
func (r *Relay) oldestUnsent(ctx context.Context) (time.Time, error) {
	var created sql.NullTime
	err := r.db.QueryRowContext(ctx,
		"SELECT created_at FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL ORDER BY id LIMIT 1").Scan(&created)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !created.Valid) {
		return time.Time{}, nil
	}
	return created.Time.UTC(), err
}

// Parked counts parked rows.
func (r *Relay) Parked(ctx context.Context) (int64, error) {
	var n int64
	err := r.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND parked_at IS NOT NULL").Scan(&n)
	return n, err
}

// ListOutbox implements Admin.
func (r *Relay) ListOutbox(ctx context.Context, parked bool, limit int) ([]AdminRow, error) {
	if limit <= 0 {
		limit = 100
	}
	cond := "parked_at IS NULL"
	if parked {
		cond = "parked_at IS NOT NULL"
	}
	rows, err := r.db.QueryContext(ctx, "SELECT id, event_id, topic, msg_key, headers, LENGTH(payload), attempts, created_at, parked_at, last_error"+
		" FROM outbox WHERE sent_at IS NULL AND "+cond+" ORDER BY id LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	defer rows.Close()
	out := []AdminRow{}
	for rows.Next() {
		var (
			row       AdminRow
			id        uint64
			headers   []byte
			parkedAt  sql.NullTime
			lastError sql.NullString
		)
		if err := rows.Scan(&id, &row.EventID, &row.Topic, &row.Key, &headers, &row.Bytes, &row.Attempts, &row.CreatedAt, &parkedAt, &lastError); err != nil {
			return nil, fmt.Errorf("list outbox: %w", err)
		}
		row.ID = strconv.FormatUint(id, 10)
		var h map[string]string
		if json.Unmarshal(headers, &h) == nil {
			row.Type = h[bus.HeaderType]
		}
		if parkedAt.Valid {
			t := parkedAt.Time
			row.ParkedAt = &t
		}
		row.LastError = lastError.String
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	return out, nil
}

// RetryParked implements Admin: the row (or every parked row) is unsent and
// unparked with its attempts reset, and the relay woken to publish it.
func (r *Relay) RetryParked(ctx context.Context, id string) (int, error) {
	q := "UPDATE outbox SET parked_at = NULL, attempts = 0, last_error = NULL WHERE sent_at IS NULL AND parked_at IS NOT NULL"
	var args []any
	if id != "" {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %q", ErrBadID, id)
		}
		q += " AND id = ?"
		args = append(args, n)
	}
	res, err := r.db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("un-park outbox rows: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("un-park outbox rows: %w", err)
	}
	if n == 0 && id != "" {
		return 0, fmt.Errorf("%w: %s", ErrNotParked, id)
	}
	r.cfg.Logger.InfoContext(ctx, "outbox relay: parked rows un-parked", "id", id, "rows", n)
	r.Notify()
	return int(n), nil
}

// acquireLock blocks until this relay holds the named lock, on a connection
// it keeps for as long as it is active. It reports standby while it waits.
func (r *Relay) acquireLock(ctx context.Context) (*sql.Conn, error) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("relay lock connection: %w", err)
	}
	var database sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&database); err != nil {
		dropConn(conn)
		return nil, fmt.Errorf("relay lock: read database name: %w", err)
	}
	r.lock = scopedLockName(r.cfg.LockName, database.String)
	if _, err := conn.ExecContext(ctx, "SET SESSION wait_timeout = ?", int(r.cfg.LockIdleTimeout.Round(time.Second).Seconds())); err != nil {
		dropConn(conn)
		return nil, fmt.Errorf("relay lock: set wait_timeout: %w", err)
	}
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 1)", r.lock).Scan(&got); err != nil {
			dropConn(conn)
			return nil, fmt.Errorf("relay lock %q: %w", r.cfg.LockName, err)
		}
		if got.Valid && got.Int64 == 1 {
			r.cfg.Logger.InfoContext(ctx, "outbox relay active", "lock", r.lock)
			return conn, nil
		}
		r.status.Set(StateStandby, nil)
		if ctx.Err() != nil {
			dropConn(conn) // its wait_timeout is the lock's, not the pool's
			return nil, ctx.Err()
		}
	}
}

// scopedLockName is name/database, hashed to fit MySQL's 64-character limit.
var scopedLockName = sqlstore.ScopedLockName

// releaseLock gives the lock up at once, so a standby takes over without
// waiting for the connection's end to reach the server; then it closes the
// connection. A connection that failed (lost) is just dropped: the server
// frees whatever it still held.
func (r *Relay) releaseLock(conn *sql.Conn, lost bool) {
	if lost {
		dropConn(conn)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = conn.ExecContext(ctx, "DO RELEASE_LOCK(?)", r.lock)
	// Not back to the pool either: its short wait_timeout would have the
	// server close it under an idle pool.
	dropConn(conn)
}

// dropConn closes conn's server connection rather than returning it to the pool.
func dropConn(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}

// checkLock fails with errLockLost unless this connection still holds the
// lock (one round trip); an error reaching the server counts as lost too,
// since the relay can no longer prove it holds it.
func (r *Relay) checkLock(ctx context.Context, conn *sql.Conn) error {
	var mine sql.NullInt64
	err := conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", r.lock).Scan(&mine)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", errLockLost, r.lock, err)
	}
	if !mine.Valid || mine.Int64 != 1 {
		return fmt.Errorf("%w: %q is not held by this relay's connection", errLockLost, r.lock)
	}
	return nil
}

// Metrics are the relay instruments; both relays (MySQL and shipping's
// documents) use them, so a service exposes the same series whichever it runs.
type Metrics struct {
	meter         metric.Meter
	published     metric.Int64Counter
	parked        metric.Int64Counter
	batchDuration metric.Float64Histogram
	backlog       metric.Int64ObservableGauge
	oldestAge     metric.Float64ObservableGauge
	parkedRows    metric.Int64ObservableGauge
}

// NewMetrics makes the instruments on the global meter provider.
func NewMetrics() *Metrics {
	meter := otel.Meter("github.com/sagasuite/sagasuite/libs/outbox")
	published, _ := meter.Int64Counter("sagasuite.outbox.published", metric.WithDescription("outbox rows published"))
	parked, _ := meter.Int64Counter("sagasuite.outbox.parked",
		metric.WithDescription("outbox rows parked after Kafka refused them MaxAttempts times"))
	d, _ := meter.Float64Histogram("sagasuite.outbox.batch.duration", metric.WithUnit("s"),
		metric.WithDescription("publish + mark-sent time of one relay batch"))
	backlog, _ := meter.Int64ObservableGauge("sagasuite.outbox.backlog",
		metric.WithDescription("outbox rows committed but not yet published (parked rows not included)"))
	oldest, _ := meter.Float64ObservableGauge("sagasuite.outbox.oldest_unsent_age", metric.WithUnit("s"),
		metric.WithDescription("age of the oldest outbox row waiting to be published (0 when none)"))
	parkedRows, _ := meter.Int64ObservableGauge("sagasuite.outbox.parked_rows",
		metric.WithDescription("outbox rows parked now, waiting for an operator (sagactl outbox)"))
	return &Metrics{meter: meter, published: published, parked: parked, batchDuration: d,
		backlog: backlog, oldestAge: oldest, parkedRows: parkedRows}
}

// Published counts n rows published in a batch that took d.
func (m *Metrics) Published(ctx context.Context, n int, d time.Duration) {
	m.published.Add(ctx, int64(n))
	m.batchDuration.Record(ctx, d.Seconds())
}

// Parked counts one row parked.
func (m *Metrics) Parked(ctx context.Context, topic string) {
	m.parked.Add(ctx, 1, metric.WithAttributes(attribute.String("topic", topic)))
}

// Gauges are what RegisterGauges' read function reports at scrape time.
type Gauges struct {
	Backlog         int64
	OldestUnsentAge time.Duration
	// OldestUnsent is when the oldest unsent row was written (zero when none
	// waits), so a caller with its own clock can age it.
	OldestUnsent time.Time
	Parked       int64
}

// RegisterGauges reports read's values at every scrape until unregistered.
func (m *Metrics) RegisterGauges(read func(ctx context.Context) (Gauges, error)) (metric.Registration, error) {
	return m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		g, err := read(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(m.backlog, g.Backlog)
		o.ObserveFloat64(m.oldestAge, g.OldestUnsentAge.Seconds())
		o.ObserveInt64(m.parkedRows, g.Parked)
		return nil
	}, m.backlog, m.oldestAge, m.parkedRows)
}

// gauges reads the backlog, the oldest row's age and the parked rows.
func (r *Relay) gauges(ctx context.Context) (Gauges, error) {
	var g Gauges
	var err error
	if g.Backlog, err = r.Backlog(ctx); err != nil {
		return g, err
	}
	if g.OldestUnsent, err = r.oldestUnsent(ctx); err != nil {
		return g, err
	}
	if !g.OldestUnsent.IsZero() {
		g.OldestUnsentAge = max(time.Since(g.OldestUnsent), 0)
	}
	g.Parked, err = r.Parked(ctx)
	return g, err
}
