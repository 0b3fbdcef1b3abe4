// Package outage kills -9 and restarts each store and the broker of the
// suite mid-load — MariaDB, Kafka, PostgreSQL behind FerretDB, Cassandra —
// and checks that the suite rides it out: no service process exits,
// readiness drops while a service cannot work and returns after, every order
// ends COMPLETED or CANCELLED, the invariant audit is clean, and no event is
// dead-lettered. Each server is a private instance (deploy/local/infra.sh
// with INFRA_INSTANCE, via tools/internal/privinfra) on its own ports and
// data, so the shared local stack keeps serving the other tests; the
// services' other servers are the shared ones.
//
// Each test prints its recovery figures (t.Log) and appends them as one line
// to a report file: $SAGASUITE_OUTAGE_REPORT, default
// $SAGASUITE_HOME/reports/outage.log.
package outage

import (
	"testing"

	"github.com/sagasuite/sagasuite/tools/internal/stack"
)

// binDir holds the five service binaries, built once for the package.
var binDir string

func TestMain(m *testing.M) {
	stack.MainWithBinaries(m, "outage", func(dir string) { binDir = dir })
}
