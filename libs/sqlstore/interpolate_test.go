package sqlstore_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
)

func TestInterpolateFollowsTheDSN(t *testing.T) {
	for _, c := range []struct {
		dsn     string
		fromDSN bool
		want    bool
	}{
		{"u:p@tcp(127.0.0.1:3306)/db", false, true},
		{"u:p@tcp(127.0.0.1:3306)/db?parseTime=true", false, true},
		{"u:p@tcp(127.0.0.1:3306)/db?charset=utf8mb4", false, true},
		{"u:p@tcp(127.0.0.1:3306)/db?charset=utf8mb4,utf8", false, true},
		{"u:p@tcp(127.0.0.1:3306)/db?interpolateParams=false", false, false}, // the DSN's choice stands
		{"u:p@tcp(127.0.0.1:3306)/db?interpolateParams=true", true, true},
		{"u:p@tcp(127.0.0.1:3306)/db?charset=gbk", false, false},          // 0x5c can be a trailing byte
		{"u:p@tcp(127.0.0.1:3306)/db?charset=utf8mb4,sjis", false, false}, // any unsafe fallback
		{"u:p?charset=big5@tcp(127.0.0.1:3306)/db", false, true},          // a '?' in the password is no parameter
		{"u:p?x@tcp(127.0.0.1:3306)/db?charset=big5", false, false},
	} {
		if got := sqlstore.Interpolate(c.dsn, c.fromDSN); got != c.want {
			t.Errorf("Interpolate(%q, %v) = %v, want %v", c.dsn, c.fromDSN, got, c.want)
		}
	}
}

// A pool from Open sends arguments inside the statement (no server-side
// prepare), and every kind of value the services store survives the trip.
func TestOpenInterpolatesArgumentsAndRoundTripsValues(t *testing.T) {
	db, _ := testenv.MySQLDatabase(t)
	ctx := context.Background()
	conn, err := db.Conn(ctx) // one session, so its status counters are ours alone
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE vals (id BIGINT PRIMARY KEY, s VARCHAR(200) NULL,
		b VARBINARY(64) NULL, at DATETIME(6) NULL, big BIGINT UNSIGNED NULL, flag BOOLEAN NULL)`); err != nil {
		t.Fatal(err)
	}
	prepares := func() int {
		var name string
		var n int
		if err := conn.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Com_stmt_prepare'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := prepares()
	at := time.Date(2026, 12, 1, 4, 5, 6, 123456000, time.UTC)
	tricky := "it's a \"quote\" \\ back\\slash; -- ? %s \x00 nul ✓ ünïcödé 🚚"
	blob := []byte{0x00, 0x27, 0x5c, 0x22, 0xff, 0xbf, 0x5c, 0x27}
	if _, err := conn.ExecContext(ctx, "INSERT INTO vals (id, s, b, at, big, flag) VALUES (?, ?, ?, ?, ?, ?)",
		1, tricky, blob, at, uint64(1<<63+5), true); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO vals (id, s, b, at, big, flag) VALUES (?, ?, ?, ?, ?, ?)",
		2, nil, []byte(nil), nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	var (
		s    string
		b    []byte
		got  time.Time
		big  uint64
		flag bool
	)
	if err := conn.QueryRowContext(ctx, "SELECT s, b, at, big, flag FROM vals WHERE id = ? AND s = ?", 1, tricky).
		Scan(&s, &b, &got, &big, &flag); err != nil {
		t.Fatal(err)
	}
	if s != tricky || !bytes.Equal(b, blob) || !got.Equal(at) || got.Location() != time.UTC || big != 1<<63+5 || !flag {
		t.Errorf("round trip: got %q %x %v %d %v", s, b, got, big, flag)
	}
	var nulls int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM vals WHERE id = ? AND s IS NULL AND b IS NULL AND at IS NULL AND big IS NULL AND flag IS NULL", 2).
		Scan(&nulls); err != nil || nulls != 1 {
		t.Errorf("NULL arguments: %d rows, %v", nulls, err)
	}
	if n := prepares() - before; n != 0 {
		t.Errorf("%d server-side prepares for parameterised statements; want 0 (interpolateParams)", n)
	}
}
