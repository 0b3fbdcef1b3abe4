package adapters_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/sagasuite/sagasuite/services/notification/internal/adapters"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters/cassandratest"
)

// racyCQL would break if two processes applied it at once: CREATE TABLE and
// ALTER … ADD are not idempotent, and the counter counts every application.
var racyCQL = fstest.MapFS{
	"00001_widgets.cql": {Data: []byte("CREATE TABLE widgets (id int PRIMARY KEY);\n" +
		"CREATE TABLE applied (migration int PRIMARY KEY, n counter);\n" +
		"UPDATE applied SET n = n + 1 WHERE migration = 1;\n")},
	"00002_widget_name.cql": {Data: []byte("ALTER TABLE widgets ADD name text;\nUPDATE applied SET n = n + 1 WHERE migration = 2;\n")},
	"00003_widget_size.cql": {Data: []byte("ALTER TABLE widgets ADD size int;\nUPDATE applied SET n = n + 1 WHERE migration = 3;\n")},
}

// Four processes opening the store at once on a keyspace that does not exist
// yet: all come up, and every migration ran exactly once.
func TestConcurrentCassandraMigrationsOnAFreshKeyspaceAllSucceedAndApplyOnce(t *testing.T) {
	keyspace := cassandratest.Keyspace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const replicas = 4
	errs := make([]error, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			<-start
			repo, err := adapters.OpenCassandra(ctx, cassandraConfig(keyspace), racyCQL)
			if err == nil {
				repo.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	session := keyspaceSession(t, keyspace)
	counts := map[int]int64{}
	iter := session.Query("SELECT migration, n FROM applied").IterContext(ctx)
	var m int
	var n int64
	for iter.Scan(&m, &n) {
		counts[m] = n
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 3; v++ {
		if counts[v] != 1 {
			t.Errorf("migration %d applied %d times, want once (all: %v)", v, counts[v], counts)
		}
	}
	var recorded int
	if err := session.Query("SELECT COUNT(*) FROM schema_migrations").ScanContext(ctx, &recorded); err != nil || recorded != 3 {
		t.Errorf("schema_migrations rows = %d (%v), want 3", recorded, err)
	}
	var locks int
	if err := session.Query("SELECT COUNT(*) FROM schema_migration_lock").ScanContext(ctx, &locks); err != nil || locks != 0 {
		t.Errorf("lock rows left = %d (%v), want 0 (released)", locks, err)
	}
}

// A held lock makes the next migrator wait at most its bound and fail with
// an error naming the holder; a holder that dies (no heartbeat, no release)
// frees the lock when its row's TTL runs out.
func TestCassandraMigrationLockWaitIsBoundedAndADeadHoldersLockExpires(t *testing.T) {
	keyspace := cassandratest.Keyspace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	repo, err := adapters.OpenCassandra(ctx, cassandraConfig(keyspace), racyCQL) // creates the keyspace
	if err != nil {
		t.Fatal(err)
	}
	repo.Close()
	session := keyspaceSession(t, keyspace)
	held, err := adapters.AcquireMigrationLock(ctx, session, adapters.MigrationLockConfig{TTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = adapters.MigrateLocked(ctx, session, racyCQL, adapters.MigrationLockConfig{Wait: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "still held by") {
		t.Fatalf("Migrate while another holds the lock = %v; want a bounded wait ending in an error naming the holder", err)
	}
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	if err := adapters.Migrate(ctx, session, racyCQL); err != nil {
		t.Fatalf("Migrate after release: %v", err)
	}

	// A holder that dies: its row is written as the lock writes it, then left.
	if err := session.Query(`INSERT INTO schema_migration_lock (name, owner, acquired_at) VALUES ('migrate', 'dead-process', toTimestamp(now())) USING TTL 3`).
		ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := adapters.MigrateLocked(ctx, session, racyCQL, adapters.MigrationLockConfig{Wait: time.Minute}); err != nil {
		t.Fatalf("Migrate after the dead holder's TTL: %v", err)
	}
	if waited := time.Since(began); waited < 2*time.Second {
		t.Errorf("took the lock after %s, before the dead holder's 3 s row expired", waited)
	}
}

func keyspaceSession(t *testing.T, keyspace string) *gocql.Session {
	t.Helper()
	cluster := gocql.NewCluster(cassandratest.Hosts()...)
	cluster.Keyspace = keyspace
	cluster.Consistency = gocql.LocalQuorum
	cluster.Timeout = 30 * time.Second
	session, err := cluster.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(session.Close)
	return session
}
