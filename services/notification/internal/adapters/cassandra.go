// Package adapters connects the notification use cases to the outside: the
// Cassandra store (saga log by order, notifications by customer) and the
// log Sender.
package adapters

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// CassandraConfig says where the store lives and how it writes.
type CassandraConfig struct {
	Hosts    []string
	Keyspace string
	// Replication is the keyspace's replication map in CQL, used only when
	// the keyspace is created, e.g. {'class':'SimpleStrategy','replication_factor':1}.
	Replication string
	// Consistency of every read and write. LOCAL_QUORUM needs a majority of
	// the local data centre's replicas: with replication factor 1 that is
	// the one replica, the same as ONE.
	Consistency        gocql.Consistency
	Username, Password string
	// TLS, when set, encrypts every connection (client_encryption_options
	// on the server); the server's certificate and host name are verified.
	TLS *tls.Config
	// Timeout bounds each request (and connecting).
	Timeout time.Duration
}

var (
	keyspacePattern    = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,47}$`)
	replicationPattern = regexp.MustCompile(`^\{[^;{}]+\}$`)
)

// ValidKeyspace reports whether name is a keyspace name this service accepts
// (unquoted CQL identifier, at most 48 characters).
func ValidKeyspace(name string) bool { return keyspacePattern.MatchString(name) }

// ValidReplication reports whether r looks like one CQL replication map; it
// goes into a CREATE KEYSPACE statement as it is.
func ValidReplication(r string) bool { return replicationPattern.MatchString(r) }

func (c CassandraConfig) cluster(keyspace string) *gocql.ClusterConfig {
	cluster := gocql.NewCluster(c.Hosts...)
	cluster.Keyspace = keyspace
	cluster.Consistency = c.Consistency
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	cluster.Timeout = timeout
	cluster.ConnectTimeout = timeout
	// Outages are normal: gocql checks DOWN hosts only every 60 s by default,
	// so a restarted Cassandra would wait up to a minute for the service.
	cluster.ReconnectInterval = 2 * time.Second
	cluster.ReconnectionPolicy = &gocql.ExponentialReconnectionPolicy{MaxRetries: 1000, InitialInterval: 100 * time.Millisecond, MaxInterval: 5 * time.Second}
	if c.Username != "" {
		cluster.Authenticator = gocql.PasswordAuthenticator{Username: c.Username, Password: c.Password}
	}
	if c.TLS != nil {
		cluster.SslOpts = &gocql.SslOptions{Config: c.TLS.Clone(), EnableHostVerification: true}
	}
	return cluster
}

// OpenCassandra connects, creates the keyspace when it is missing, applies
// the schema migrations in migrationFS and returns the repository.
func OpenCassandra(ctx context.Context, cfg CassandraConfig, migrationFS fs.FS) (*NotificationCassandraRepository, error) {
	if !ValidKeyspace(cfg.Keyspace) {
		return nil, fmt.Errorf("cassandra: invalid keyspace name %q", cfg.Keyspace)
	}
	if !ValidReplication(cfg.Replication) {
		return nil, fmt.Errorf("cassandra: invalid replication %q", cfg.Replication)
	}
	if err := createKeyspace(ctx, cfg); err != nil {
		return nil, err
	}
	session, err := cfg.cluster(cfg.Keyspace).CreateSession()
	if err != nil {
		return nil, fmt.Errorf("cassandra: connect to %v, keyspace %s: %w", cfg.Hosts, cfg.Keyspace, err)
	}
	if err := Migrate(ctx, session, migrationFS); err != nil {
		session.Close()
		return nil, err
	}
	return &NotificationCassandraRepository{session: session}, nil
}

// createKeyspace runs CREATE KEYSPACE IF NOT EXISTS on a session without a
// keyspace (the keyspace session cannot connect before it exists).
func createKeyspace(ctx context.Context, cfg CassandraConfig) error {
	session, err := cfg.cluster("").CreateSession()
	if err != nil {
		return fmt.Errorf("cassandra: connect to %v: %w", cfg.Hosts, err)
	}
	defer session.Close()
	stmt := fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s", cfg.Keyspace, cfg.Replication)
	if err := session.Query(stmt).ExecContext(ctx); err != nil {
		return fmt.Errorf("cassandra: create keyspace %s: %w", cfg.Keyspace, err)
	}
	return nil
}

// MigrationLockWait bounds how long Migrate waits for another process's
// migration before it gives up with an error naming the holder.
const MigrationLockWait = 2 * time.Minute

// Migrate applies the NNNNN_name.cql files of migrationFS that the keyspace's
// schema_migrations table does not list, in version order, recording each.
// Statements within a file end with ";" at the end of a line.
//
// Replicas starting together must not race a schema change (Cassandra runs
// concurrent ALTERs of one table side by side, and two processes would both
// apply a migration neither has recorded yet), so Migrate holds the
// keyspace's migration lock while it reads and applies: a lightweight
// transaction on a row of schema_migration_lock (see MigrationLock).
func Migrate(ctx context.Context, session *gocql.Session, migrationFS fs.FS) error {
	return MigrateLocked(ctx, session, migrationFS, MigrationLockConfig{})
}

// MigrateLocked is Migrate with the lock's timings given (tests shorten them).
func MigrateLocked(ctx context.Context, session *gocql.Session, migrationFS fs.FS, lockCfg MigrationLockConfig) error {
	files, err := migrationFiles(migrationFS)
	if err != nil {
		return err
	}
	lock, err := AcquireMigrationLock(ctx, session, lockCfg)
	if err != nil {
		return err
	}
	err = applyMigrations(lock.Context(ctx), session, migrationFS, files)
	if lostErr := lock.Release(); lostErr != nil {
		err = errors.Join(err, lostErr)
	}
	return err
}

func applyMigrations(ctx context.Context, session *gocql.Session, migrationFS fs.FS, files []migrationFile) error {
	if err := session.Query(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version int PRIMARY KEY, name text, applied_at timestamp)`).ExecContext(ctx); err != nil {
		return fmt.Errorf("cassandra: create schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	iter := session.Query(`SELECT version FROM schema_migrations`).IterContext(ctx)
	var version int
	for iter.Scan(&version) {
		applied[version] = true
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("cassandra: read schema_migrations: %w", err)
	}
	for _, f := range files {
		if applied[f.version] {
			continue
		}
		body, err := fs.ReadFile(migrationFS, f.name)
		if err != nil {
			return fmt.Errorf("cassandra: read migration %s: %w", f.name, err)
		}
		for _, stmt := range statements(string(body)) {
			if err := session.Query(stmt).ExecContext(ctx); err != nil {
				return fmt.Errorf("cassandra: migration %s: %w", f.name, err)
			}
		}
		if err := session.Query(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			f.version, f.name, time.Now().UTC()).ExecContext(ctx); err != nil {
			return fmt.Errorf("cassandra: record migration %s: %w", f.name, err)
		}
	}
	return nil
}

type migrationFile struct {
	version int
	name    string
}

var migrationName = regexp.MustCompile(`^(\d+)_[a-z0-9_]+\.cql$`)

func migrationFiles(migrationFS fs.FS) ([]migrationFile, error) {
	entries, err := fs.ReadDir(migrationFS, ".")
	if err != nil {
		return nil, fmt.Errorf("cassandra: list migrations: %w", err)
	}
	var files []migrationFile
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".cql") {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("cassandra: migration %q is not named NNNNN_name.cql", e.Name())
		}
		v, err := strconv.Atoi(m[1])
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("cassandra: migration %q has no positive version", e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("cassandra: migrations %q and %q share version %d", other, e.Name(), v)
		}
		seen[v] = e.Name()
		files = append(files, migrationFile{version: v, name: e.Name()})
	}
	if len(files) == 0 {
		return nil, errors.New("cassandra: no migrations found")
	}
	sort.Slice(files, func(i, j int) bool { return files[i].version < files[j].version })
	return files, nil
}

// statements splits a CQL file into statements: each ends with ";" at the
// end of a line; "--" comment lines are dropped.
func statements(body string) []string {
	var out []string
	var current strings.Builder
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		current.WriteString(line)
		current.WriteString("\n")
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(current.String()), ";"))
			current.Reset()
		}
	}
	if rest := strings.TrimSpace(current.String()); rest != "" {
		out = append(out, rest)
	}
	return out
}
