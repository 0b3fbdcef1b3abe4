// Package sqlstore holds what every MySQL-backed service needs around
// database/sql: opening a pool that is ready, transactions retried on
// deadlock, versioned migrations (goose), and the messaging tables (outbox and
// inbox) that live beside each service's own tables.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
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

// Migrate applies the goose migrations in fsys (files NNNNN_name.sql at its
// root) that are not applied yet, recording versions in versionTable.
func Migrate(ctx context.Context, db *sql.DB, fsys fs.FS, versionTable string) error {
	store, err := database.NewStore(database.DialectMySQL, versionTable)
	if err != nil {
		return fmt.Errorf("migration store: %w", err)
	}
	provider, err := goose.NewProvider("", db, fsys, goose.WithStore(store), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations (%s): %w", versionTable, err)
	}
	return nil
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
