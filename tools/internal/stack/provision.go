package stack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
	"github.com/sagasuite/sagasuite/tools/internal/teardown"
)

// Provision creates the MySQL databases and users of the stack's SQL
// services: one database and one user per service, the user granted
// everything on its own database and nothing else (GET_LOCK, which the
// outbox relay uses, needs no privilege). Shipping's Mongo database,
// notification's keyspace and the Kafka topics come into being when the
// services start (the topics of services the stack does not run are made
// here); the cleanup drops them all. Start calls Provision; a
// second call does nothing.
func (s *Stack) Provision(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provisioned {
		return nil
	}
	var names []string
	for _, name := range mysqlServices {
		if slices.Contains(s.opts.Services, name) {
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		admin, err := openAdmin(ctx, s.opts.Servers.MySQLAdminDSN)
		if err != nil {
			return err
		}
		defer admin.Close()
		// Marked before the first statement: the cleanup drops whatever got made.
		s.provisioned = true
		for _, name := range names {
			a := s.mysql[name]
			for _, stmt := range []string{
				"CREATE DATABASE `" + a.database + "`",
				"CREATE USER '" + a.user + "'@'%' IDENTIFIED BY '" + a.password + "'",
				"GRANT ALL PRIVILEGES ON `" + a.database + "`.* TO '" + a.user + "'@'%'",
			} {
				if _, err := admin.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("stack: provision %s on MariaDB: %s: %w", name, strings.SplitN(stmt, " IDENTIFIED", 2)[0], err)
				}
			}
		}
	}
	s.provisioned = true
	return s.createAbsentOwnersTopics(ctx)
}

// topicOwners maps each service to the saga topic it creates and produces to.
var topicOwners = map[string]string{
	suite.Order: events.TopicOrders, suite.Inventory: events.TopicInventory, suite.Payment: events.TopicPayments,
	suite.Shipping: events.TopicShipments, suite.Notification: events.TopicNotifications,
}

// createAbsentOwnersTopics creates the saga topics of the services this
// stack does not run: each service creates only its own topic and waits
// for the ones it reads, so a partial stack would wait forever. With all
// five running nothing is made here, and the services' own topic creation
// is what the end-to-end tests exercise.
func (s *Stack) createAbsentOwnersTopics(ctx context.Context) error {
	var specs []bus.TopicSpec
	for _, name := range suite.Services {
		if !slices.Contains(s.opts.Services, name) {
			specs = append(specs, bus.TopicSpec{Name: s.topicPrefix + topicOwners[name], Partitions: 3, ReplicationFactor: 1})
		}
	}
	if len(specs) == 0 {
		return nil
	}
	if err := bus.EnsureTopics(ctx, strings.Split(s.opts.Servers.KafkaBrokers, ","), specs...); err != nil {
		return fmt.Errorf("stack: create the topics of the services not started: %w", err)
	}
	return nil
}

func openAdmin(ctx context.Context, dsn string) (*sql.DB, error) {
	admin, err := sqlstore.Open(ctx, dsn, sqlstore.Options{MaxOpenConns: 2, PingTimeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("stack: MariaDB admin (SAGASUITE_MYSQL_ADMIN_DSN or Options.Servers; run `make infra-up`): %w", err)
	}
	return admin, nil
}

// deprovision drops everything the stack created or its services did:
// MySQL databases and users, the Mongo database, the Cassandra keyspace,
// the Kafka topics and consumer groups under the prefix. It goes on after
// a failure and reports them all.
func (s *Stack) deprovision(ctx context.Context) error {
	s.mu.Lock()
	provisioned := s.provisioned
	s.mu.Unlock()
	var errs []error
	if provisioned {
		errs = append(errs, s.dropMySQL(ctx))
	}
	if slices.Contains(s.opts.Services, suite.Shipping) {
		errs = append(errs, teardown.DropMongoDatabase(ctx, s.opts.Servers.MongoURI, s.mongoDB))
	}
	if slices.Contains(s.opts.Services, suite.Notification) {
		errs = append(errs, teardown.DropKeyspace(ctx, strings.Split(s.opts.Servers.CassandraHosts, ","), s.keyspace))
	}
	errs = append(errs, teardown.DropKafka(ctx, strings.Split(s.opts.Servers.KafkaBrokers, ","), s.topicPrefix))
	return errors.Join(errs...)
}

func (s *Stack) dropMySQL(ctx context.Context) error {
	admin, err := openAdmin(ctx, s.opts.Servers.MySQLAdminDSN)
	if err != nil {
		return err
	}
	defer admin.Close()
	var errs []error
	for _, name := range mysqlServices {
		a := s.mysql[name]
		for _, stmt := range []string{
			"DROP USER IF EXISTS '" + a.user + "'@'%'",
			"DROP DATABASE IF EXISTS `" + a.database + "`",
		} {
			if _, err := admin.ExecContext(ctx, stmt); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", stmt, err))
			}
		}
	}
	return errors.Join(errs...)
}

func cassandraSession(hosts string) (*gocql.Session, error) {
	cluster := gocql.NewCluster(strings.Split(hosts, ",")...)
	cluster.Consistency = gocql.One
	cluster.ConnectTimeout = 10 * time.Second
	cluster.Timeout = 30 * time.Second // schema changes wait for agreement
	cluster.DisableInitialHostLookup = true
	session, err := cluster.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("cassandra %s (SAGASUITE_CASSANDRA_HOSTS or Options.Servers; run `make infra-up`): %w", hosts, err)
	}
	return session, nil
}
