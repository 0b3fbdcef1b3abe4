package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sagasuite/sagasuite/libs/sqlstore"
)

// Brokers splits KafkaBrokers into a list.
func Brokers() []string { return strings.Split(KafkaBrokers(), ",") }

// UniqueName returns prefix plus a random suffix, for topics, groups and
// databases that must not collide with other tests or earlier runs.
func UniqueName(prefix string) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return prefix + hex.EncodeToString(b)
}

// MySQLDatabase creates a fresh database on the real MariaDB, opens a pool on
// it and drops it when the test ends. It fails the test when MariaDB is not
// reachable (run `make infra-up`).
func MySQLDatabase(t testing.TB) (*sql.DB, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	admin, err := sqlstore.Open(ctx, MySQLAdminDSN(), sqlstore.Options{MaxOpenConns: 2, PingTimeout: time.Minute})
	if err != nil {
		t.Fatalf("MariaDB for tests (SAGASUITE_MYSQL_ADMIN_DSN; run `make infra-up`): %v", err)
	}
	name := UniqueName("t_")
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("create database %s: %v", name, err)
	}
	cfg, err := mysql.ParseDSN(MySQLAdminDSN())
	if err != nil {
		t.Fatalf("parse SAGASUITE_MYSQL_ADMIN_DSN: %v", err)
	}
	cfg.DBName = name
	dsn := cfg.FormatDSN()
	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() {
		db.Close()
		dropCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(dropCtx, "DROP DATABASE "+name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		admin.Close()
	})
	return db, dsn
}
