// Package notification is the notification service of the order saga. It
// consumes every saga event (consumer group "notification", all five saga
// topics) and
//
//   - records each one in saga_log_by_order, the complete event log of an
//     order (GetSagaLog returns the recorded envelopes, oldest first);
//   - for the customer-facing ones (ORDER_CREATED, ORDER_COMPLETED,
//     ORDER_CANCELLED, PAYMENT_REFUNDED) writes a row in
//     notifications_by_customer (ListNotifications, newest first) and hands
//     the message to a Sender (LogSender by default: one structured log line).
//
// Its store is Apache Cassandra. Every write is an upsert whose key derives
// from the event (notification id from the event id, send time = the event's
// occurred_at), so redelivery rewrites the same rows with the same values:
// effects are exactly-once without an inbox table.
//
// The Sender is at-least-once: a notification is marked delivered only after
// the Sender returns, so a crash (or a failed mark) in between sends it again
// on redelivery. A redelivery after the mark sends nothing.
//
// The service emits nothing, so it has no outbox; NOTIFICATION_SENT (optional
// in the design) is not published.
package notification

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"google.golang.org/grpc"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/logging"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/tlsfiles"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters"
	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/ports"
	"github.com/sagasuite/sagasuite/services/notification/migrations"
)

// Name is the service's name: its consumer group, producer name and config prefix (upper case).
const Name = "notification"

// Config is the service's settings, read from NOTIFICATION_* variables.
type Config struct {
	config.Common
	service.KafkaConfig

	// CassandraHosts are contact points, host:port.
	CassandraHosts []string `env:"CASSANDRA_HOSTS,required" envSeparator:","`
	// CassandraKeyspace is created at start-up when missing.
	CassandraKeyspace string `env:"CASSANDRA_KEYSPACE" envDefault:"notification"`
	// CassandraReplication is the CQL replication map used when creating the keyspace.
	CassandraReplication string `env:"CASSANDRA_REPLICATION" envDefault:"{'class':'SimpleStrategy','replication_factor':1}"`
	// CassandraConsistency of every read and write: LOCAL_QUORUM by default,
	// which on replication factor 1 is the one replica (as ONE/LOCAL_ONE).
	CassandraConsistency string `env:"CASSANDRA_CONSISTENCY" envDefault:"LOCAL_QUORUM"`
	// CassandraUsername and CassandraPassword, when set, log in with
	// Cassandra's PasswordAuthenticator.
	CassandraUsername string `env:"CASSANDRA_USERNAME"`
	CassandraPassword string `env:"CASSANDRA_PASSWORD"`
	// CassandraPasswordFile is the password in a file (a mounted Secret;
	// one trailing newline is ignored), instead of CassandraPassword.
	CassandraPasswordFile string `env:"CASSANDRA_PASSWORD_FILE"`
	// CassandraTLSEnabled turns on TLS to the nodes; the files imply it.
	// CassandraTLSCAFile is the nodes' CA (empty: the system roots);
	// CassandraTLSCertFile/KeyFile a client certificate (mutual TLS);
	// CassandraTLSServerName the name their certificates must carry.
	CassandraTLSEnabled    bool   `env:"CASSANDRA_TLS_ENABLED" envDefault:"false"`
	CassandraTLSCAFile     string `env:"CASSANDRA_TLS_CA_FILE"`
	CassandraTLSCertFile   string `env:"CASSANDRA_TLS_CERT_FILE"`
	CassandraTLSKeyFile    string `env:"CASSANDRA_TLS_KEY_FILE"`
	CassandraTLSServerName string `env:"CASSANDRA_TLS_SERVER_NAME"`
	// CassandraTimeout bounds each request and connecting.
	CassandraTimeout time.Duration `env:"CASSANDRA_TIMEOUT" envDefault:"10s"`
}

// Validate checks what the types cannot; config.Load reports it with the rest.
func (c Config) Validate() error {
	const p = "NOTIFICATION_"
	var problems []string
	if len(c.CassandraHosts) == 0 {
		problems = append(problems, p+"CASSANDRA_HOSTS is required")
	}
	for _, h := range c.CassandraHosts {
		if strings.TrimSpace(h) == "" {
			problems = append(problems, p+"CASSANDRA_HOSTS has an empty entry")
			break
		}
	}
	if !adapters.ValidKeyspace(c.CassandraKeyspace) {
		problems = append(problems, fmt.Sprintf("%sCASSANDRA_KEYSPACE: invalid keyspace name %q (letters, digits, _; at most 48)", p, c.CassandraKeyspace))
	}
	if !adapters.ValidReplication(c.CassandraReplication) {
		problems = append(problems, fmt.Sprintf("%sCASSANDRA_REPLICATION: %q is not a CQL replication map like {'class':'SimpleStrategy','replication_factor':1}", p, c.CassandraReplication))
	}
	if _, err := c.consistency(); err != nil {
		problems = append(problems, fmt.Sprintf("%sCASSANDRA_CONSISTENCY: %v", p, err))
	}
	if (c.CassandraPassword != "" || c.CassandraPasswordFile != "") && c.CassandraUsername == "" {
		problems = append(problems, p+"CASSANDRA_PASSWORD(_FILE) is set without "+p+"CASSANDRA_USERNAME")
	}
	if _, _, err := c.cassandraCredentials(); err != nil {
		problems = append(problems, err.Error())
	}
	if c.CassandraTimeout <= 0 {
		problems = append(problems, p+"CASSANDRA_TIMEOUT must be positive")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// cassandraCredentials reads the password file and the TLS files; errors
// name the variable.
func (c Config) cassandraCredentials() (password string, tlsConfig *tls.Config, err error) {
	const p = "NOTIFICATION_"
	password = c.CassandraPassword
	if c.CassandraPasswordFile != "" {
		if c.CassandraPassword != "" {
			return "", nil, errors.New(p + "CASSANDRA_PASSWORD_FILE must not be set together with " + p + "CASSANDRA_PASSWORD")
		}
		b, err := os.ReadFile(c.CassandraPasswordFile)
		if err != nil {
			return "", nil, fmt.Errorf("%sCASSANDRA_PASSWORD_FILE: cannot read %q: %w", p, c.CassandraPasswordFile, err)
		}
		password = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	if c.CassandraTLSEnabled || c.CassandraTLSCAFile != "" || c.CassandraTLSCertFile != "" || c.CassandraTLSKeyFile != "" {
		tlsConfig, err = tlsfiles.Client{CAFile: c.CassandraTLSCAFile, CertFile: c.CassandraTLSCertFile,
			KeyFile: c.CassandraTLSKeyFile, ServerName: c.CassandraTLSServerName}.Config()
		if err != nil {
			return "", nil, fmt.Errorf("%sCASSANDRA_TLS_CA_FILE/_CERT_FILE/_KEY_FILE: %w", p, err)
		}
	}
	return password, tlsConfig, nil
}

func (c Config) consistency() (gocql.Consistency, error) {
	var level gocql.Consistency
	if err := level.UnmarshalText([]byte(strings.ToUpper(strings.TrimSpace(c.CassandraConsistency)))); err != nil {
		return 0, fmt.Errorf("%w (want e.g. LOCAL_QUORUM, QUORUM, LOCAL_ONE, ONE)", err)
	}
	if level == gocql.Serial || level == gocql.LocalSerial || level == gocql.Any {
		return 0, fmt.Errorf("%s is not usable for both reads and writes", level)
	}
	return level, nil
}

// storeConfig is the Cassandra store's settings; cfg has passed Validate.
func (c Config) storeConfig() adapters.CassandraConfig {
	consistency, _ := c.consistency()                  // checked by Validate
	password, tlsConfig, _ := c.cassandraCredentials() // checked by Validate
	return adapters.CassandraConfig{
		Hosts: c.CassandraHosts, Keyspace: c.CassandraKeyspace, Replication: c.CassandraReplication,
		Consistency: consistency, Username: c.CassandraUsername, Password: password, TLS: tlsConfig,
		Timeout: c.CassandraTimeout,
	}
}

// Run opens the store (creating the keyspace and migrating the schema),
// then runs the consumer and the gRPC API until ctx ends or a part fails.
func Run(ctx context.Context, cfg Config, rt service.Runtime) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: config: %w", Name, err)
	}
	if rt.Logger == nil {
		rt.Logger = logging.New(os.Stderr, cfg.LogLevel, string(cfg.LogFormat)).With("service", Name)
	}
	openCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	store, err := adapters.OpenCassandra(openCtx, cfg.storeConfig(), migrations.FS)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: store: %w", Name, err)
	}
	defer store.Close()
	return serve(ctx, cfg, rt, store, store.Ping)
}

// RunInMemory runs the service on an in-memory store instead of Cassandra:
// the one-process dev stack's stand-in, since no CQL server exists in Go. It
// passes the same contract test as the Cassandra store, but the saga log and
// notifications live only as long as the process. The Cassandra settings
// are ignored.
func RunInMemory(ctx context.Context, cfg Config, rt service.Runtime) error {
	if rt.Logger == nil {
		rt.Logger = logging.New(os.Stderr, cfg.LogLevel, string(cfg.LogFormat)).With("service", Name)
	}
	rt.Logger.WarnContext(ctx, "notifications and the saga log are held in memory (no Cassandra: no CQL server exists in Go); they are lost when the process ends")
	return serve(ctx, cfg, rt, adapters.NewNotificationMemoryRepository(), nil)
}

// serve runs the consumer and the gRPC API on store until ctx ends or a part fails.
func serve(ctx context.Context, cfg Config, rt service.Runtime, store app.Store, ready func(context.Context) error) error {
	application := app.New(store, adapters.LogSender{Logger: rt.Logger}, rt)
	return service.Run(ctx, service.Spec{
		Runtime:  rt,
		Produces: []string{events.TopicNotifications},
		Name:     Name,
		Common:   cfg.Common,
		Kafka:    cfg.KafkaConfig,
		Policy:   ports.Policy,
		Register: func(s *grpc.Server) {
			notificationv1.RegisterNotificationServiceServer(s, ports.NewGRPCServer(application, rt.Logger))
		},
		Consumers: []service.Consumer{{Group: Name, Topics: events.AllTopics, Handler: ports.NewEventHandler(application).Handle}},
		Ready:     ready,
	})
}
