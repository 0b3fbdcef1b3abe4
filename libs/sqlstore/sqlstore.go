// Package sqlstore holds what every MySQL-backed service needs around
// database/sql: opening a pool that is ready, transactions retried on
// deadlock, versioned migrations (goose), and the messaging tables (outbox and
// inbox) that live beside each service's own tables.
package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/go-sql-driver/mysql"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
)

// Options tunes the pool. Zero values take the defaults.
type Options struct {
	MaxOpenConns int           // default 16; 1 on stores that are unsafe under concurrency
	PingTimeout  time.Duration // how long Open waits for the server (default 30s)
}

// Open opens a pool on dsn (go-sql-driver format) with times in UTC and waits,
// bounded, until the server answers.
func Open(ctx context.Context, dsn string, opts Options) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse mysql dsn: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.Params = withDefault(cfg.Params, "time_zone", "'+00:00'")
	// Arguments go inside the statement text, escaped by the driver, so a
	// query is one round trip and one server command instead of prepare,
	// execute and close: about half of MariaDB's commands per saga.
	cfg.InterpolateParams = interpolate(dsn, cfg.InterpolateParams)
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql connector: %w", err)
	}
	db := sql.OpenDB(connector)
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = 16
	}
	db.SetMaxOpenConns(opts.MaxOpenConns)
	db.SetMaxIdleConns(opts.MaxOpenConns)
	db.SetConnMaxLifetime(30 * time.Minute)
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = 30 * time.Second
	}
	pingCtx, cancel := context.WithTimeout(ctx, opts.PingTimeout)
	defer cancel()
	_, err = backoff.Retry(pingCtx, func() (struct{}, error) { return struct{}{}, db.PingContext(pingCtx) },
		backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxElapsedTime(opts.PingTimeout))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("mysql at %s not reachable within %s: %w", cfg.Addr, opts.PingTimeout, err)
	}
	return db, nil
}

// interpolate tells whether the driver may put arguments into statements:
// the DSN's own interpolateParams wins; otherwise yes, unless the DSN names
// a charset whose multi-byte characters can hide a quote from escaping.
func interpolate(dsn string, fromDSN bool) bool {
	// The parameters start at the first '?' after the last '/', as the
	// driver reads them (a password may hold a '?').
	_, query, _ := strings.Cut(dsn[strings.LastIndex(dsn, "/")+1:], "?")
	params, err := url.ParseQuery(query)
	if err != nil {
		return fromDSN
	}
	if params.Has("interpolateParams") {
		return fromDSN
	}
	for _, charsets := range params["charset"] {
		for _, cs := range strings.Split(charsets, ",") {
			if !safeCharsets[strings.ToLower(strings.TrimSpace(cs))] {
				return false
			}
		}
	}
	return true
}

var safeCharsets = map[string]bool{"utf8mb4": true, "utf8mb3": true, "utf8": true, "latin1": true, "ascii": true, "binary": true}

func withDefault(params map[string]string, k, v string) map[string]string {
	if params == nil {
		params = map[string]string{}
	}
	if _, ok := params[k]; !ok {
		params[k] = v
	}
	return params
}

// MySQL error numbers we decide on.
const (
	errDupEntry        = 1062
	errLockWaitTimeout = 1205
	errDeadlock        = 1213
)

// IsDuplicateKey reports whether err is a unique-key violation.
func IsDuplicateKey(err error) bool { return mysqlErrNo(err) == errDupEntry }

func isRetryable(err error) bool {
	n := mysqlErrNo(err)
	return n == errDeadlock || n == errLockWaitTimeout
}

func mysqlErrNo(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// InTx runs fn in a transaction and commits it; fn's error rolls it back.
// Deadlocks and lock-wait timeouts (which InnoDB resolves by aborting one
// side) rerun fn from the start, so fn must do all its reads inside tx. The
// reruns wait a capped exponential backoff with jitter (so the aborted
// sides do not collide again in step), at most txAttempts runs in all
// (a few seconds); ctx's end stops the waiting at once and returns the last
// deadlock joined with ctx's error. A caller that must not give up (the bus
// consumer) retries what is still retryable after that.
func InTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	return InTxWith(ctx, db, nil, fn)
}

// InTxWith is InTx with transaction options (nil: the server's defaults),
// e.g. READ COMMITTED for a locking read that must not take gap locks.
func InTxWith(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	wait := newTxBackoff()
	var err error
	for attempt := 1; ; attempt++ {
		if err = inTxOnce(ctx, db, opts, fn); err == nil || !isRetryable(err) || attempt == txAttempts {
			return err
		}
		timer := time.NewTimer(wait.NextBackOff())
		select {
		case <-ctx.Done():
			timer.Stop()
			return errors.Join(err, ctx.Err())
		case <-timer.C:
		}
	}
}

// txAttempts bounds InTx's runs of fn: with newTxBackoff's waits that is
// about 2.6 s (at most ~4 s) of retrying before the deadlock is returned.
const txAttempts = 12

// newTxBackoff: 5 ms doubling to a 500 ms cap, each wait jittered ±50 %.
func newTxBackoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{InitialInterval: 5 * time.Millisecond, RandomizationFactor: 0.5,
		Multiplier: 2, MaxInterval: 500 * time.Millisecond}
}

func inTxOnce(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// MigrationLockWait bounds how long Migrate waits for another process's
// migration to finish before it gives up with an error naming the lock.
const MigrationLockWait = 2 * time.Minute

// Migrate applies the goose migrations in fsys (files NNNNN_name.sql at its
// root) that are not applied yet, recording versions in versionTable.
//
// Replicas starting together must not race a schema change (two CREATE TABLE
// of one migration, or a version row recorded twice), so Migrate first takes
// the database's migration lock (MySQL GET_LOCK, see migrationLocker) on a
// connection of its own, waiting at most MigrationLockWait; whoever
// comes second finds the migrations applied and does nothing. A pool of one
// connection (the dev stack's in-process MySQL: one process) takes no lock.
func Migrate(ctx context.Context, db *sql.DB, fsys fs.FS, versionTable string) error {
	return migrate(ctx, db, fsys, versionTable, MigrationLockWait)
}

func migrate(ctx context.Context, db *sql.DB, fsys fs.FS, versionTable string, lockWait time.Duration) (err error) {
	store, err := database.NewStore(database.DialectMySQL, versionTable)
	if err != nil {
		return fmt.Errorf("migration store: %w", err)
	}
	provider, err := goose.NewProvider("", db, fsys, goose.WithStore(store), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	// The lock is held on a connection of its own around all of Up, not
	// through goose's session locker: goose's Up first asks HasPending,
	// which creates the version table outside the locker, and a replica
	// that sees the table before its zero row fails with "missing zero
	// version migration".
	if db.Stats().MaxOpenConnections != 1 {
		lockConn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		defer lockConn.Close()
		locker := &migrationLocker{wait: lockWait}
		if err := locker.SessionLock(ctx, lockConn); err != nil {
			return err
		}
		defer func() {
			// A detached context: the caller's may be done, the lock must go.
			err = errors.Join(err, locker.SessionUnlock(context.WithoutCancel(ctx), lockConn))
		}()
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations (%s): %w", versionTable, err)
	}
	return nil
}

// migrationLocker is MySQL's GET_LOCK on a connection held while migrating:
// the lock belongs to that connection, so it is freed by the server
// when that connection ends, also when the process is killed mid-migration
// (no stale lock row to expire). One lock per database covers the service's
// own schema and the messaging tables alike; the name is scoped to the
// database because GET_LOCK names are server-wide.
type migrationLocker struct {
	wait time.Duration
	name string // set by SessionLock
}

// lockPoll is one GET_LOCK wait; Migrate asks again until its bound, so a
// cancelled ctx is noticed between polls without killing the connection.
const lockPoll = time.Second

func (l *migrationLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	var dbName sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil {
		return fmt.Errorf("migration lock: read database name: %w", err)
	}
	l.name = ScopedLockName("sagasuite-migrate", dbName.String)
	deadline := time.Now().Add(l.wait)
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", l.name, lockPoll.Seconds()).Scan(&got); err != nil {
			return fmt.Errorf("migration lock %q: %w", l.name, err)
		}
		if got.Valid && got.Int64 == 1 {
			return nil
		}
		if !got.Valid { // NULL: the server refused (e.g. killed the wait)
			return fmt.Errorf("migration lock %q: GET_LOCK returned NULL", l.name)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("migration lock %q: %w", l.name, err)
		}
		if time.Now().After(deadline) {
			var holder sql.NullInt64
			_ = conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", l.name).Scan(&holder)
			return fmt.Errorf("migration lock %q on database %s still held by connection %d after %s: "+
				"another process is migrating (or hangs; see SHOW PROCESSLIST)", l.name, dbName.String, holder.Int64, l.wait)
		}
	}
}

func (l *migrationLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var released sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", l.name).Scan(&released); err != nil {
		return fmt.Errorf("release migration lock %q: %w", l.name, err)
	}
	if !released.Valid || released.Int64 != 1 {
		return fmt.Errorf("release migration lock %q: not held by this connection", l.name)
	}
	return nil
}

// ScopedLockName is name/database, hashed to fit MySQL's 64-character limit
// on lock names (GET_LOCK names are server-wide; databases scope them).
func ScopedLockName(name, database string) string {
	scoped := name + "/" + database
	if len(scoped) <= 64 {
		return scoped
	}
	sum := sha256.Sum256([]byte(scoped))
	return name[:min(len(name), 31)] + "/" + hex.EncodeToString(sum[:16])
}

//go:embed migrations/*.sql
var messagingMigrations embed.FS

// MigrateMessaging creates or upgrades the outbox and inbox tables. They are
// versioned apart from the service's own schema (table goose_messaging_version)
// so every service gets the same ones without copying them.
func MigrateMessaging(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(messagingMigrations, "migrations")
	if err != nil {
		return err
	}
	return Migrate(ctx, db, sub, "goose_messaging_version")
}
