package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"testing/fstest"

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
