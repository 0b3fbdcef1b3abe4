package outage

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/audit"
	"github.com/sagasuite/sagasuite/tools/internal/bench"
	"github.com/sagasuite/sagasuite/tools/internal/privinfra"
	"github.com/sagasuite/sagasuite/tools/internal/stack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// The outage every test plays: load starts, the server is killed ~3 s in,
// stays down 10 s, is restarted on its data, load goes on 5 s more, then
// every order must end. These are the scenario's shape, not speed
// assumptions: each wait for an outcome below has a generous bound instead.
const (
	loadRate     = 8 // orders per second, open loop
	beforeKill   = 3 * time.Second
	downFor      = 10 * time.Second
	afterRestart = 5 * time.Second
	// orderBound bounds one order from CreateOrder to terminal (bench's
	// per-order timeout): generous recovery. The stack's order deadline
	// (stack.TestOrderDeadline) is longer, so an order stuck on a lost
	// event shows as unfinished instead of being cancelled for TIMEOUT.
	orderBound = 3 * time.Minute
	readyBound = 2 * time.Minute
	// watchAfterRestart is the least time the processes are watched after
	// the restart: a service that gives up on a store late (a relay that
	// notices its lost lock 7–39 s after MariaDB returned) must show.
	watchAfterRestart = 45 * time.Second
	auditBound        = time.Minute // compensations settle within seconds of the last terminal order
	testBound         = 8 * time.Minute
)

// loadMix has every saga path: success plus the three failing ones.
var loadMix = bench.Mix{bench.Success: 70, bench.Declined: 10, bench.Undeliverable: 10, bench.OutOfStock: 10}

// scenario is one server's outage.
type scenario struct {
	kill     string   // the infra.sh component killed and restarted
	instance []string // the private instance's components
	// affected services cannot work while it is down: their readiness must drop.
	affected []string
	servers  func(*privinfra.Instance) stack.Servers
	// settings are extra infra.sh settings of the private instance.
	settings map[string]string
}

func TestOutageMariaDB(t *testing.T) {
	run(t, scenario{
		kill: privinfra.MariaDB, instance: []string{privinfra.MariaDB},
		affected: []string{suite.Order, suite.Inventory, suite.Payment},
		servers:  func(i *privinfra.Instance) stack.Servers { return stack.Servers{MySQLAdminDSN: i.MySQLAdminDSN()} },
	})
}

func TestOutageKafka(t *testing.T) {
	run(t, scenario{
		kill: privinfra.Kafka, instance: []string{privinfra.Kafka},
		affected: suite.Services,
		servers:  func(i *privinfra.Instance) stack.Servers { return stack.Servers{KafkaBrokers: i.KafkaBrokers()} },
	})
}

// PostgreSQL is killed behind FerretDB, which keeps running: shipping's
// MongoDB-wire server loses its store.
func TestOutagePostgres(t *testing.T) {
	run(t, scenario{
		kill: privinfra.Postgres, instance: []string{privinfra.Postgres, privinfra.FerretDB},
		affected: []string{suite.Shipping},
		servers:  func(i *privinfra.Instance) stack.Servers { return stack.Servers{MongoURI: i.MongoURI()} },
	})
}

// Cassandra syncs its commitlog before acknowledging (group mode): with the
// local stack's periodic mode a kill -9 of this single node loses the last
// seconds of acknowledged writes (replay stops at the last sync marker),
// which no service could make up for; production gets that durability from
// replicas (RF 3, QUORUM) instead.
func TestOutageCassandra(t *testing.T) {
	run(t, scenario{
		kill: privinfra.Cassandra, instance: []string{privinfra.Cassandra},
		affected: []string{suite.Notification},
		servers:  func(i *privinfra.Instance) stack.Servers { return stack.Servers{CassandraHosts: i.CassandraHosts()} },
		settings: map[string]string{"INFRA_CASSANDRA_COMMITLOG_SYNC": "group"},
	})
}

// figures are what one outage measured, for the log and the report line.
type figures struct {
	outage                       string
	instanceUp, restartUp        time.Duration // infra.sh up: first start, restart after the kill
	down                         time.Duration // kill → restart began
	firstCompleted, allReady     time.Duration // after the restart returned; -1: never
	placed, completed, cancelled int
	unfinished, createErrors     int
	outcomes                     map[string]int
	notReady                     map[string]time.Duration // first not-ready after the kill
	exits                        map[string]time.Duration // process exit after the kill
	deadLetters                  string
	dlqCount                     int
	auditResult                  string
}

func run(t *testing.T, sc scenario) {
	ctx, cancel := context.WithTimeout(context.Background(), testBound)
	defer cancel()

	// The instance first: its cleanup (stop, delete) then runs after the
	// stack's, which still drops what the stack made on it.
	inst := privinfra.New(t, sc.instance...)
	for k, v := range sc.settings {
		inst.Set(k, v)
	}
	began := time.Now()
	if err := inst.Up(ctx, sc.instance...); err != nil {
		t.Fatal(err)
	}
	fig := figures{outage: sc.kill, instanceUp: time.Since(began), firstCompleted: -1, allReady: -1}

	s := stack.New(t, stack.Options{BinDir: binDir, Servers: sc.servers(inst)})
	// Runs before the stack's cleanup deletes the logs (cleanups run last
	// registered first), so a failure can be read afterwards.
	t.Cleanup(func() { keepLogs(t, s, inst, sc.instance) })
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w := watch(s)
	defer w.Close()

	// The load runs until load.Stop; bench then waits for every placed
	// order (each bounded by orderBound) unless loadCtx is cancelled first.
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	loadStarted := time.Now()
	load := bench.Start(loadCtx, s.Clients(), bench.Config{Rate: loadRate, Duration: testBound, Mix: loadMix, Timeout: orderBound})
	defer load.Stop()

	// ~3 s into the load: wait for the first order to complete (the suite
	// works end to end), then a little more.
	if err := load.AwaitCompleted(ctx, 2*time.Minute); err != nil {
		t.Fatalf("before any outage: %v", err)
	}
	sleep(ctx, beforeKill-time.Second/2)

	killedAt := time.Now()
	if err := inst.Kill(ctx, sc.kill); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: kill -9 at load +%s; down for %s", sc.kill, killedAt.Sub(loadStarted).Round(time.Millisecond), downFor)
	sleep(ctx, downFor)

	restartBegan := time.Now()
	fig.down = restartBegan.Sub(killedAt)
	if err := inst.Up(ctx, sc.kill); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	fig.restartUp = restarted.Sub(restartBegan)
	t.Logf("%s: restarted on its data in %s", sc.kill, fig.restartUp.Round(time.Millisecond))

	sleep(ctx, afterRestart)
	load.Stop()
	// Every placed order must end; a service that exited cannot get them
	// there, so stop waiting at the first exit (it fails the test below).
	select {
	case <-load.Done():
	case <-w.exited:
		t.Logf("a service process exited: not waiting for the orders")
		cancelLoad()
	}
	res, err := load.Wait()
	if err != nil {
		t.Fatalf("load: %v", err)
	}

	readyCtx, cancelReady := context.WithTimeout(ctx, readyBound)
	readyErr := w.awaitAllReady(readyCtx, restarted)
	cancelReady()
	_, exits := w.snapshot()

	// Figures.
	fig.placed, fig.unfinished, fig.outcomes = res.Placed, res.Unfinished, res.Outcomes
	fig.completed, fig.cancelled = res.Completed(), res.Cancelled()
	for call, n := range res.Errors {
		if strings.HasPrefix(call, "CreateOrder") {
			fig.createErrors += n
		}
	}
	for _, e := range load.Ends() {
		if e.Outcome == "COMPLETED" && !e.Ended.Before(restarted) {
			if d := e.Ended.Sub(restarted); fig.firstCompleted < 0 || d < fig.firstCompleted {
				fig.firstCompleted = d
			}
		}
	}
	dlqCtx, cancelDLQ := context.WithTimeout(ctx, time.Minute)
	dls, dlqErr := s.DeadLetters(dlqCtx)
	cancelDLQ()
	fig.dlqCount, fig.deadLetters = len(dls), stack.DeadLetterSummary(dls)

	var rep audit.Report
	var auditErr error
	if len(exits) == 0 {
		rep, auditErr = audit.Settle(ctx, s.Clients(), audit.Scope{CustomerIDs: res.CustomerIDs, SKUs: res.SKUs, GatewayURL: s.GatewayURL()}, auditBound)
		fig.auditResult = fmt.Sprintf("%d orders, %d pending, %d violations", rep.Orders, rep.Pending, len(rep.Violations))
	} else {
		fig.auditResult = "skipped (a service exited)"
	}
	// Keep watching for late exits and readiness flaps.
	select {
	case <-ctx.Done():
	case <-w.exited:
	case <-time.After(time.Until(restarted.Add(watchAfterRestart))):
	}
	sleep(ctx, time.Second) // a few more rounds after an exit
	w.Close()
	rounds, exits := w.snapshot()
	if at := stableAllReady(rounds, restarted); !at.IsZero() {
		fig.allReady = at.Sub(restarted)
	}
	fig.notReady = map[string]time.Duration{}
	for name, at := range firstNotReady(rounds, killedAt) {
		fig.notReady[name] = at.Sub(killedAt)
	}
	fig.exits = map[string]time.Duration{}
	for name, at := range exits {
		fig.exits[name] = at.Sub(killedAt)
	}
	fig.log(t)
	fig.report(t)

	// Verdicts.
	for _, name := range suite.Services {
		if at, ok := exits[name]; ok {
			t.Errorf("%s: the %s process exited %s after the kill of %s (a store or broker outage must not stop a service); see its log tail below",
				sc.kill, name, at.Sub(killedAt).Round(time.Millisecond), sc.kill)
		}
	}
	for _, name := range sc.affected {
		if _, ok := fig.notReady[name]; !ok {
			t.Errorf("%s: %s's /readyz never went false while %s was down (%s): readiness must say it cannot work",
				sc.kill, name, sc.kill, downFor)
		}
	}
	if readyErr != nil {
		t.Errorf("%s: after the restart: %v", sc.kill, readyErr)
	}
	if res.Placed == 0 || res.Unfinished > 0 || res.Done != res.Placed {
		t.Errorf("%s: %d orders placed, %d ended, %d did not end within %s (errors %v)",
			sc.kill, res.Placed, res.Done, res.Unfinished, orderBound, res.Errors)
	}
	if fig.firstCompleted < 0 {
		t.Errorf("%s: no order COMPLETED after the restart: the suite did not serve again", sc.kill)
	}
	if dlqErr != nil {
		t.Errorf("%s: reading the dead-letter topics: %v", sc.kill, dlqErr)
	}
	if len(dls) > 0 {
		t.Errorf("%s: %d events dead-lettered, want 0: %s\n  %s", sc.kill, len(dls), fig.deadLetters, stack.DeadLetterLines(dls, 10))
	}
	switch {
	case len(exits) > 0:
	case auditErr != nil:
		t.Errorf("%s: audit: %v", sc.kill, auditErr)
	case !rep.OK() || rep.Pending != 0:
		t.Errorf("%s: audit: %d orders, %d pending, violations:\n  %s", sc.kill, rep.Orders, rep.Pending, strings.Join(rep.Violations, "\n  "))
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func secs(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func durations(m map[string]time.Duration) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, name := range suite.Services {
		if d, ok := m[name]; ok {
			parts = append(parts, name+"+"+secs(d))
		}
	}
	return strings.Join(parts, ",")
}

func (f figures) line() string {
	var outs []string
	for k, v := range f.outcomes {
		outs = append(outs, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(outs)
	return fmt.Sprintf("outage=%s down=%s restart=%s first_completed_after_restart=%s all_ready_after_restart=%s "+
		"placed=%d completed=%d cancelled=%d unfinished=%d create_errors=%d outcomes=%s not_ready_after_kill=%s exited_after_kill=%s dlq=%d audit=%q",
		f.outage, secs(f.down), secs(f.restartUp), secs(f.firstCompleted), secs(f.allReady),
		f.placed, f.completed, f.cancelled, f.unfinished, f.createErrors, strings.Join(outs, ","),
		durations(f.notReady), durations(f.exits), f.dlqCount, f.auditResult)
}

func (f figures) log(t *testing.T) {
	t.Logf("%s outage: private instance up in %s; kill -9, down %s, restart (infra.sh up) %s; after the restart: first order COMPLETED %s, all five ready for good %s",
		f.outage, secs(f.instanceUp), secs(f.down), secs(f.restartUp), secs(f.firstCompleted), secs(f.allReady))
	t.Logf("%s outage: %d orders placed at %d/s (%d COMPLETED, %d CANCELLED, %d unfinished; %v), %d CreateOrder errors; readiness false after the kill: %s; processes exited after the kill: %s; dead letters: %s; audit: %s",
		f.outage, f.placed, loadRate, f.completed, f.cancelled, f.unfinished, f.outcomes, f.createErrors,
		durations(f.notReady), durations(f.exits), f.deadLetters, f.auditResult)
}

// reportPath is $SAGASUITE_OUTAGE_REPORT, default $SAGASUITE_HOME/reports/outage.log.
func reportPath() (string, error) { return stack.ReportPath("SAGASUITE_OUTAGE_REPORT", "outage.log") }

// keepLogs copies the services' logs and the private servers' logs of a
// failed test next to the report file (both are deleted at the test's end).
func keepLogs(t *testing.T, s *stack.Stack, inst *privinfra.Instance, comps []string) {
	if !t.Failed() {
		return
	}
	report, err := reportPath()
	if err != nil {
		t.Logf("logs not kept: %v", err)
		return
	}
	servers := map[string]string{}
	for _, c := range comps {
		servers[inst.LogPath(c)] = "server-" + c + ".log"
	}
	s.KeepLogs(t, filepath.Join(filepath.Dir(report), "outage-logs"), servers)
}

// report appends the figures as one line to the report file.
func (f figures) report(t *testing.T) {
	path, err := reportPath()
	if err != nil {
		t.Logf("report: %v", err)
		return
	}
	stack.AppendReport(t, path, f.line())
}
