// Package testenv tells integration tests where the local real stack listens.
//
// `make infra-up` (deploy/local/infra.sh) starts Kafka, MariaDB, PostgreSQL+FerretDB
// and Cassandra on these loopback ports; `deploy/local/infra.sh env` prints the same
// variables. Tests fail, never skip, when a server is not there: run `make infra-up`.
package testenv

import (
	"os"

	"github.com/google/uuid"
)

// Defaults match deploy/local/infra.sh. All ports sit below 32768, outside the
// ephemeral range, so a dial to a server that is not up yet cannot self-connect.
const (
	DefaultKafkaBrokers   = "127.0.0.1:19092"
	DefaultMySQLAdminDSN  = "sagasuite:sagasuite@tcp(127.0.0.1:13306)/"
	DefaultMongoURI       = "mongodb://127.0.0.1:17017/"
	DefaultCassandraHosts = "127.0.0.1:19042"
	DefaultPostgresURL    = "postgres://sagasuite:sagasuite@127.0.0.1:15432/postgres?sslmode=disable"
)

func lookup(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// KafkaBrokers is a comma-separated list of bootstrap brokers (SAGASUITE_KAFKA_BROKERS).
func KafkaBrokers() string { return lookup("SAGASUITE_KAFKA_BROKERS", DefaultKafkaBrokers) }

// MySQLAdminDSN is a go-sql-driver DSN with rights to create databases and users,
// without a database name (SAGASUITE_MYSQL_ADMIN_DSN).
func MySQLAdminDSN() string { return lookup("SAGASUITE_MYSQL_ADMIN_DSN", DefaultMySQLAdminDSN) }

// MongoURI is the FerretDB (MongoDB wire) URI (SAGASUITE_MONGO_URI).
func MongoURI() string { return lookup("SAGASUITE_MONGO_URI", DefaultMongoURI) }

// CassandraHosts is a comma-separated host:port list of CQL endpoints (SAGASUITE_CASSANDRA_HOSTS).
func CassandraHosts() string { return lookup("SAGASUITE_CASSANDRA_HOSTS", DefaultCassandraHosts) }

// PostgresURL is FerretDB's backing PostgreSQL (SAGASUITE_POSTGRES_URL).
func PostgresURL() string { return lookup("SAGASUITE_POSTGRES_URL", DefaultPostgresURL) }

// IDFor maps a readable test name to a stable UUID, for ids the schema
// requires to be UUIDs (causation ids, order ids).
func IDFor(name string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("sagasuite-test:"+name)).String()
}
