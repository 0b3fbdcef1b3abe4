package devstack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sagasuite/sagasuite/tools/internal/suite"
	"github.com/sagasuite/sagasuite/tools/internal/teardown"
)

// MaxNamespaceLen is the longest Options.Namespace: a Cassandra keyspace
// name (namespace + "notification") has at most 48 characters.
const MaxNamespaceLen = 48 - len(suite.Notification)

// CheckNamespace says why ns cannot name the stack's databases and
// keyspace, or nil.
func CheckNamespace(ns string) error {
	if ns == "" || len(ns) > MaxNamespaceLen {
		return fmt.Errorf("devstack: namespace %q: want 1 to %d characters", ns, MaxNamespaceLen)
	}
	for _, r := range ns {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return fmt.Errorf("devstack: namespace %q: want letters, digits and underscores only (it names MySQL databases and a Cassandra keyspace)", ns)
		}
	}
	return nil
}

// NamespaceDatabases names what a stack in namespace ns keeps on its
// stores: the SQL services' MySQL databases, shipping's MongoDB database
// and notification's Cassandra keyspace.
func NamespaceDatabases(ns string) (mysqlDBs []string, mongoDB, keyspace string) {
	for _, name := range []string{suite.Order, suite.Inventory, suite.Payment} {
		mysqlDBs = append(mysqlDBs, ns+name)
	}
	return mysqlDBs, ns + suite.Shipping, ns + suite.Notification
}

// DropNamespace removes what a stack started with opts left on its EXTERNAL
// servers: the MySQL databases, the MongoDB database and the Cassandra
// keyspace of opts.Namespace, and on an external Kafka the topics and
// consumer groups starting with opts.TopicPrefix. In-process servers are
// gone with the stack already. It refuses the default namespace and an
// empty topic prefix (the dev stack keeps its data there on purpose). Call
// it after Stop; it tries everything and reports every failure.
func DropNamespace(ctx context.Context, opts Options) error {
	if opts.Namespace == "" || opts.Namespace == Namespace {
		return fmt.Errorf("devstack: will not drop the dev stack's namespace %q", Namespace)
	}
	if err := CheckNamespace(opts.Namespace); err != nil {
		return err
	}
	mysqlDBs, mongoDB, keyspace := NamespaceDatabases(opts.Namespace)
	var errs []error
	if opts.MySQLDSN != "" {
		errs = append(errs, dropMySQL(ctx, opts.MySQLDSN, mysqlDBs))
	}
	if opts.MongoURI != "" {
		errs = append(errs, teardown.DropMongoDatabase(ctx, opts.MongoURI, mongoDB))
	}
	if len(opts.Cassandra) > 0 {
		errs = append(errs, teardown.DropKeyspace(ctx, opts.Cassandra, keyspace))
	}
	if len(opts.Kafka) > 0 {
		if opts.TopicPrefix == "" || opts.TopicPrefix == DefaultExternalTopicPrefix {
			errs = append(errs, fmt.Errorf("devstack: will not delete the topics of prefix %q", opts.TopicPrefix))
		} else {
			errs = append(errs, teardown.DropKafka(ctx, opts.Kafka, opts.TopicPrefix))
		}
	}
	return errors.Join(errs...)
}

func dropMySQL(ctx context.Context, dsn string, dbs []string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("mysql dsn: %w", err)
	}
	cfg.DBName = ""
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return fmt.Errorf("mysql dsn: %w", err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	var errs []error
	for _, name := range dbs {
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			errs = append(errs, fmt.Errorf("drop database %s on %s: %w", name, cfg.Addr, err))
		}
	}
	return errors.Join(errs...)
}

// NamespaceLeft lists what of opts.Namespace (and, on an external Kafka, of
// opts.TopicPrefix) exists on opts' external servers: "mysql:<db>",
// "mongo:<db>", "cassandra:<keyspace>", "kafka topic:<name>", "kafka
// group:<id>". A replay's cleanup is checked with it.
func NamespaceLeft(ctx context.Context, opts Options) ([]string, error) {
	mysqlDBs, mongoDB, keyspace := NamespaceDatabases(opts.Namespace)
	var left []string
	if opts.MySQLDSN != "" {
		cfg, err := mysql.ParseDSN(opts.MySQLDSN)
		if err != nil {
			return nil, fmt.Errorf("mysql dsn: %w", err)
		}
		cfg.DBName = ""
		connector, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, fmt.Errorf("mysql dsn: %w", err)
		}
		db := sql.OpenDB(connector)
		defer db.Close()
		rows, err := db.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (?, ?, ?) ORDER BY 1",
			mysqlDBs[0], mysqlDBs[1], mysqlDBs[2])
		if err != nil {
			return nil, fmt.Errorf("mysql: list databases: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				return nil, err
			}
			left = append(left, "mysql:"+name)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	if opts.MongoURI != "" {
		client, err := mongo.Connect(options.Client().ApplyURI(opts.MongoURI).
			SetServerSelectionTimeout(10 * time.Second).SetTimeout(30 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("mongo %s: %w", opts.MongoURI, err)
		}
		defer client.Disconnect(context.WithoutCancel(ctx)) //nolint:errcheck // nothing left to do with it
		names, err := client.ListDatabaseNames(ctx, map[string]any{"name": mongoDB})
		if err != nil {
			return nil, fmt.Errorf("mongo: list databases: %w", err)
		}
		for _, n := range names {
			left = append(left, "mongo:"+n)
		}
	}
	if len(opts.Cassandra) > 0 {
		cluster := gocql.NewCluster(opts.Cassandra...)
		cluster.ConnectTimeout, cluster.Timeout, cluster.DisableInitialHostLookup = 10*time.Second, 30*time.Second, true
		session, err := cluster.CreateSession()
		if err != nil {
			return nil, fmt.Errorf("cassandra %s: %w", strings.Join(opts.Cassandra, ","), err)
		}
		defer session.Close()
		var name string
		err = session.Query("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?", keyspace).
			ScanContext(ctx, &name)
		switch {
		case err == nil:
			left = append(left, "cassandra:"+name)
		case !errors.Is(err, gocql.ErrNotFound):
			return nil, fmt.Errorf("cassandra: list keyspaces: %w", err)
		}
	}
	if len(opts.Kafka) > 0 && opts.TopicPrefix != "" {
		dialer := &kafka.Dialer{Timeout: 10 * time.Second}
		conn, err := dialer.DialContext(ctx, "tcp", opts.Kafka[0])
		if err != nil {
			return nil, fmt.Errorf("kafka %s: %w", opts.Kafka[0], err)
		}
		defer conn.Close()
		parts, err := conn.ReadPartitions()
		if err != nil {
			return nil, fmt.Errorf("kafka: list topics: %w", err)
		}
		seen := map[string]bool{}
		for _, p := range parts {
			if strings.HasPrefix(p.Topic, opts.TopicPrefix) && !seen[p.Topic] {
				seen[p.Topic] = true
				left = append(left, "kafka topic:"+p.Topic)
			}
		}
		client := &kafka.Client{Addr: kafka.TCP(opts.Kafka...), Timeout: 10 * time.Second}
		listed, err := client.ListGroups(ctx, &kafka.ListGroupsRequest{})
		if err == nil {
			err = listed.Error
		}
		if err != nil {
			return nil, fmt.Errorf("kafka: list groups: %w", err)
		}
		for _, g := range listed.Groups {
			if strings.HasPrefix(g.GroupID, opts.TopicPrefix) {
				left = append(left, "kafka group:"+g.GroupID)
			}
		}
	}
	slices.Sort(left)
	return left, nil
}
