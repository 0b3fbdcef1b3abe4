package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
)

// racyMigrations would break if two processes ran them at once: the CREATE
// and ALTER are not idempotent, and the INSERT counts every application. The
// sleeps hold each migration open longer than goose's 1 s retry of its
// version table, so unlocked replicas do overlap (checked: without the lock
// this test fails).
var racyMigrations = fstest.MapFS{
	"00001_widgets.sql": {Data: []byte("-- +goose Up\nCREATE TABLE widgets (id INT PRIMARY KEY);\nDO SLEEP(1.5);\n" +
		"CREATE TABLE applied (id INT AUTO_INCREMENT PRIMARY KEY, migration INT NOT NULL);\n" +
		"INSERT INTO applied (migration) VALUES (1);\n-- +goose Down\nDROP TABLE widgets;\n")},
	"00002_widget_name.sql": {Data: []byte("-- +goose Up\nALTER TABLE widgets ADD COLUMN name VARCHAR(10);\n" +
		"DO SLEEP(1.5);\nINSERT INTO applied (migration) VALUES (2);\n-- +goose Down\nALTER TABLE widgets DROP COLUMN name;\n")},
	"00003_widget_index.sql": {Data: []byte("-- +goose Up\nCREATE INDEX widgets_name ON widgets (name);\n" +
		"INSERT INTO applied (migration) VALUES (3);\n-- +goose Down\nDROP INDEX widgets_name ON widgets;\n")},
}

// Four processes starting at once on an empty database (each its own pool,
// as replicas have): all come up, and every migration ran exactly once.
func TestConcurrentMigrationsOnAnEmptyDatabaseAllSucceedAndApplyOnce(t *testing.T) {
	_, dsn := testenv.MySQLDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const replicas = 4
	pools := make([]*sql.DB, replicas)
	for i := range pools {
		db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{MaxOpenConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		pools[i] = db
	}
	start := make(chan struct{})
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i, db := range pools {
		wg.Go(func() {
			<-start
			errs[i] = errors.Join(sqlstore.Migrate(ctx, db, racyMigrations, "goose_widgets_version"),
				sqlstore.MigrateMessaging(ctx, db))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	db := pools[0]
	rows, err := db.QueryContext(ctx, "SELECT migration, COUNT(*) FROM applied GROUP BY migration ORDER BY migration")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var m, n int
		if err := rows.Scan(&m, &n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("migration %d applied %d times, want once", m, n)
		}
		got = append(got, string(rune('0'+m)))
	}
	if strings.Join(got, ",") != "1,2,3" {
		t.Errorf("applied migrations %v, want 1,2,3", got)
	}
	for table, want := range map[string]int{"goose_widgets_version": 3, "goose_messaging_version": 3} {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table+" WHERE version_id > 0").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s has %d version rows, want %d (one per migration)", table, n, want)
		}
	}
}

// A process that finds the migration lock held longer than its bound gives
// up with an error that names the lock, rather than waiting for ever.
func TestMigrationLockWaitIsBoundedWithAClearError(t *testing.T) {
	db, _ := testenv.MySQLDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var dbName string
	if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	holder, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	name := sqlstore.ScopedLockName("sagasuite-migrate", dbName)
	var got int
	if err := holder.QueryRowContext(ctx, "SELECT GET_LOCK(?, 5)", name).Scan(&got); err != nil || got != 1 {
		t.Fatalf("take %q: %d %v", name, got, err)
	}
	err = sqlstore.MigrateWithLockWait(ctx, db, racyMigrations, "goose_widgets_version", 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "still held") {
		t.Fatalf("Migrate with the lock held elsewhere = %v; want an error naming lock %q", err, name)
	}
	if _, err := holder.ExecContext(ctx, "DO RELEASE_LOCK(?)", name); err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.Migrate(ctx, db, racyMigrations, "goose_widgets_version"); err != nil {
		t.Fatalf("Migrate once the lock is free: %v", err)
	}
}
