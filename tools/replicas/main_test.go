// Package replicas runs every service of the suite as several processes on
// one store and one consumer group, as Kubernetes Deployments with more than
// one replica do, under a load of orders, through a rolling restart of every
// service (the new process starts and gets ready, then the old one gets
// SIGTERM) and a kill -9 of one process of each service; then every order
// must be COMPLETED or CANCELLED, the invariant audit clean and no event
// dead-lettered. It uses the shared local stack (nothing here kills a
// store or the broker: tools/outage does that).
//
// The figures (orders, restarts, how soon the sagas in flight at each
// restart or kill ended, violations) are logged and appended as one line to
// $SAGASUITE_REPLICAS_REPORT, default $SAGASUITE_HOME/reports/replicas.log.
package replicas

import (
	"testing"

	"github.com/sagasuite/sagasuite/tools/internal/stack"
)

// binDir holds the five service binaries, built once for the package.
var binDir string

func TestMain(m *testing.M) {
	stack.MainWithBinaries(m, "replicas", func(dir string) { binDir = dir })
}
