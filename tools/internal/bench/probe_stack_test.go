package bench

import (
	"net/url"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/tools/internal/stack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// stackProbe measures a stack's five processes and the local real stack's
// servers where the tests find them (SAGASUITE_* variables).
func stackProbe(t testing.TB, s *stack.Stack) *Probe {
	t.Helper()
	var grpc, ops suite.Addrs
	for _, name := range suite.Services {
		grpc.Set(name, s.GRPCAddr(name))
		ops.Set(name, s.OpsAddr(name))
	}
	my, err := mysql.ParseDSN(testenv.MySQLAdminDSN())
	if err != nil {
		t.Fatalf("SAGASUITE_MYSQL_ADMIN_DSN: %v", err)
	}
	host := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		return u.Host
	}
	first := func(list string) string { a, _, _ := strings.Cut(list, ","); return a }
	servers := LocalServers(first(testenv.KafkaBrokers()), my.Addr, host(testenv.PostgresURL()), host(testenv.MongoURI()),
		first(testenv.CassandraHosts()))
	return SuiteProbe(grpc, ops, servers, testenv.MySQLAdminDSN())
}
