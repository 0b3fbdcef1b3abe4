// Package cassandratest gives tests a fresh keyspace name on the local real
// Cassandra (libs/testenv) and drops that keyspace when the test ends.
package cassandratest

import (
	"context"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/sagasuite/sagasuite/libs/testenv"
)

// Hosts is testenv.CassandraHosts as a list.
func Hosts() []string {
	hosts := strings.Split(testenv.CassandraHosts(), ",")
	for i := range hosts {
		hosts[i] = strings.TrimSpace(hosts[i])
	}
	return hosts
}

// Keyspace returns a unique keyspace name (the code under test creates it)
// and drops the keyspace when the test ends. It fails the test when
// Cassandra does not answer (run `make infra-up`).
func Keyspace(t testing.TB) string {
	t.Helper()
	cluster := gocql.NewCluster(Hosts()...)
	cluster.Consistency = gocql.One
	cluster.Timeout = 30 * time.Second // schema changes wait for agreement
	cluster.ConnectTimeout = 10 * time.Second
	session, err := cluster.CreateSession()
	if err != nil {
		t.Fatalf("Cassandra for tests at %v (SAGASUITE_CASSANDRA_HOSTS; run `make infra-up`): %v", Hosts(), err)
	}
	name := testenv.UniqueName("notif_t_")
	t.Cleanup(func() {
		defer session.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := session.Query("DROP KEYSPACE IF EXISTS " + name).ExecContext(ctx); err != nil {
			t.Errorf("drop keyspace %s: %v", name, err)
		}
	})
	return name
}
