package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/go-sql-driver/mysql"

	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
)

func TestMigrationsApplyOnceAndMessagingTablesExist(t *testing.T) {
	db, _ := testenv.MySQLDatabase(t)
	ctx := context.Background()
	own := fstest.MapFS{
		"00001_widgets.sql": {Data: []byte("-- +goose Up\nCREATE TABLE widgets (id INT PRIMARY KEY, name VARCHAR(10) NOT NULL UNIQUE);\n-- +goose Down\nDROP TABLE widgets;\n")},
	}
	for i := 0; i < 2; i++ { // the second run must be a no-op, not a failure
		if err := sqlstore.Migrate(ctx, db, own, "goose_widgets_version"); err != nil {
			t.Fatalf("Migrate run %d: %v", i+1, err)
		}
		if err := sqlstore.MigrateMessaging(ctx, db); err != nil {
			t.Fatalf("MigrateMessaging run %d: %v", i+1, err)
		}
	}
	for _, table := range []string{"widgets", "outbox", "inbox"} {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			t.Errorf("table %s: %v", table, err)
		}
	}
}

func TestInTxCommitsRollsBackAndClassifiesDuplicates(t *testing.T) {
	db, _ := testenv.MySQLDatabase(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE kv (k VARCHAR(10) PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	insert := func(tx *sql.Tx, k string) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO kv VALUES (?, 1)", k)
		return err
	}
	if err := sqlstore.InTx(ctx, db, func(tx *sql.Tx) error { return insert(tx, "a") }); err != nil {
		t.Fatalf("commit: %v", err)
	}
	boom := errors.New("boom")
	err := sqlstore.InTx(ctx, db, func(tx *sql.Tx) error {
		if err := insert(tx, "b"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want the callback's error", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM kv WHERE k = 'b'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rolled-back row present: n=%d err=%v", n, err)
	}
	err = sqlstore.InTx(ctx, db, func(tx *sql.Tx) error { return insert(tx, "a") })
	if !sqlstore.IsDuplicateKey(err) {
		t.Fatalf("duplicate insert: %v, want IsDuplicateKey", err)
	}
}

// Two transactions that lock the same two rows in opposite order deadlock
// for real (steered by channels, not by timing): InnoDB aborts one, InTx
// runs it again, and both commit.
func TestInTxRetriesARealDeadlock(t *testing.T) {
	db, _ := testenv.MySQLDatabase(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE kv (k VARCHAR(10) PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO kv VALUES ('a', 0), ('b', 0)"); err != nil {
		t.Fatal(err)
	}
	var runs [2]atomic.Int32
	locked := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	// side i locks its first row, waits (first run only) until the other
	// side holds its own first row, then asks for that one: a cycle.
	side := func(i int, first, second string) func(tx *sql.Tx) error {
		return func(tx *sql.Tx) error {
			run := runs[i].Add(1)
			if _, err := tx.ExecContext(ctx, "UPDATE kv SET v = v + 1 WHERE k = ?", first); err != nil {
				return err
			}
			if run == 1 {
				close(locked[i])
				<-locked[1-i]
			}
			_, err := tx.ExecContext(ctx, "UPDATE kv SET v = v + 1 WHERE k = ?", second)
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = sqlstore.InTx(ctx, db, side(0, "a", "b")) })
	wg.Go(func() { errs[1] = sqlstore.InTx(ctx, db, side(1, "b", "a")) })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if total := runs[0].Load() + runs[1].Load(); total < 3 {
		t.Fatalf("%d runs in all; a deadlock must have rerun one side", total)
	}
	var a, b int
	if err := db.QueryRowContext(ctx, "SELECT (SELECT v FROM kv WHERE k = 'a'), (SELECT v FROM kv WHERE k = 'b')").Scan(&a, &b); err != nil {
		t.Fatal(err)
	}
	if a != 2 || b != 2 {
		t.Fatalf("a = %d, b = %d; want 2 and 2 (both transactions applied once)", a, b)
	}
}

var errDeadlock = &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}

// A deadlock that never clears: InTx gives up after its bound, returning it.
func TestInTxBoundsItsRetries(t *testing.T) {
	db, _ := testenv.MySQLDatabase(t)
	var runs int
	err := sqlstore.InTx(context.Background(), db, func(*sql.Tx) error { runs++; return errDeadlock })
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1213 || runs != sqlstore.TxAttempts {
		t.Fatalf("InTx = %v after %d runs; want the deadlock after %d", err, runs, sqlstore.TxAttempts)
	}
}

// The context's end stops the retrying at once, with both causes in the error.
func TestInTxStopsRetryingWhenTheContextEnds(t *testing.T) {
	db, _ := testenv.MySQLDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runs int
	err := sqlstore.InTx(ctx, db, func(*sql.Tx) error {
		runs++
		if runs == 2 {
			cancel()
		}
		return errDeadlock
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errDeadlock) || runs != 2 {
		t.Fatalf("InTx = %v after %d runs; want the deadlock and context.Canceled after 2", err, runs)
	}
}
