package replicas

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/audit"
	"github.com/sagasuite/sagasuite/tools/internal/bench"
	"github.com/sagasuite/sagasuite/tools/internal/stack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// processesPerService: every service runs as two processes on one store
// and consumer group, as a Deployment with two replicas does (shipping's
// single-writer lease makes the second a standby: services/shipping/README.md).
const processesPerService = 2

// replicas is the process count of every service.
func replicas() map[string]int {
	n := map[string]int{}
	for _, name := range suite.Services {
		n[name] = processesPerService
	}
	return n
}

// The scenario's shape (not speed assumptions: every wait for an outcome
// has a generous bound of its own).
const (
	loadRate = 20 // orders per second, open loop, spread over the order processes
	// minLoad is the least time orders are placed; placing goes on until
	// every restart and kill is done, too.
	minLoad = time.Minute
	// rollAfter: the rolling restarts begin this long after the first
	// order completed (the suite works end to end before anything moves).
	rollAfter = 3 * time.Second
	// killEvery staggers the kill -9s, one service at a time; downFor is
	// how long a killed process stays dead before its replacement starts:
	// longer than the consumer group's session timeout (libs/bus, 6 s), so
	// the surviving replica has to take the dead one's partitions over.
	killEvery = 4 * time.Second
	downFor   = 8 * time.Second
	// orderDeadline is the order service's saga deadline: production-like.
	// An order it cancels (TIMEOUT) is terminal and compensated like any
	// other, so it is counted, not failed on.
	orderDeadline = "60s"
	// orderBound bounds one order from CreateOrder to terminal (bench's
	// per-order timeout), well beyond the deadline.
	orderBound = 5 * time.Minute
	auditBound = 2 * time.Minute
	// testBound bounds the whole test: a hang, not a speed target.
	testBound = 15 * time.Minute
)

// loadMix has every saga path: success plus the three failing ones.
var loadMix = bench.Mix{bench.Success: 70, bench.Declined: 10, bench.Undeliverable: 10, bench.OutOfStock: 10}

// disruption is one process stopped (rolling restart) or killed, and when.
type disruption struct {
	kind    string // "rolling" (SIGTERM after the new process was ready) or "kill9"
	process string // e.g. order#1
	at      time.Time
	// replacementReady: how long the replacing process took from its
	// start to /readyz 200.
	replacementReady time.Duration
	// drained: when every saga in flight at the moment had ended, after
	// it (-1: one never ended): the takeover as the sagas saw it.
	drained time.Duration
}

// eventLog collects the disruptions from concurrent goroutines.
type eventLog struct {
	mu   sync.Mutex
	list []disruption
}

func (l *eventLog) add(d disruption) {
	l.mu.Lock()
	l.list = append(l.list, d)
	l.mu.Unlock()
}

func TestReplicasRollingRestartAndKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testBound)
	defer cancel()
	began := time.Now()

	s := stack.New(t, stack.Options{
		BinDir: binDir, Replicas: replicas(),
		Env: map[string]map[string]string{suite.Order: {"ORDER_DEADLINE": orderDeadline}},
	})
	// Runs before the stack's cleanup deletes the logs.
	t.Cleanup(func() {
		if path, err := reportPath(); err == nil {
			s.KeepLogs(t, filepath.Join(filepath.Dir(path), "replicas-logs"), nil)
		}
	})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	startedIn := time.Since(began)
	t.Logf("%s started in %s", processCounts(s), startedIn.Round(time.Millisecond))

	// A crashed process cannot get its orders done: stop waiting for them.
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	go func() {
		for loadCtx.Err() == nil {
			if len(s.Crashed()) > 0 {
				cancelLoad() // the verdicts below name the process
				return
			}
			sleep(loadCtx, 500*time.Millisecond)
		}
	}()

	clients := s.Clients()
	orders := &spreadOrders{OrderServiceClient: clients.Order, byPeer: map[string]int{}}
	clients.Order = orders
	loadStarted := time.Now()
	load := bench.Start(loadCtx, clients, bench.Config{Rate: loadRate, Duration: testBound, Mix: loadMix, Timeout: orderBound})
	defer load.Stop()
	if err := load.AwaitCompleted(ctx, 2*time.Minute); err != nil {
		t.Fatalf("before any restart: %v", err)
	}
	sleep(ctx, rollAfter)

	// Every service's rolling restart at once (a release of the whole
	// suite), then one kill -9 per service, staggered.
	var events eventLog
	var errs []error
	var errMu sync.Mutex
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
	}
	rollStarted := time.Now()
	var wg sync.WaitGroup
	for _, name := range suite.Services {
		wg.Go(func() {
			if err := roll(ctx, s, name, &events); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	rolled := time.Since(rollStarted)
	t.Logf("rolling restart of every service done in %s", rolled.Round(time.Millisecond))
	for i, name := range suite.Services {
		if i > 0 {
			sleep(ctx, killEvery)
		}
		wg.Go(func() {
			if err := killOne(ctx, s, name, &events); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	if rest := minLoad - time.Since(loadStarted); rest > 0 {
		sleep(ctx, rest)
	}
	load.Stop()
	placingFor := time.Since(loadStarted)
	res, err := load.Wait()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	cancelLoad()

	crashed := s.Crashed()
	dlqCtx, cancelDLQ := context.WithTimeout(ctx, time.Minute)
	dls, dlqErr := s.DeadLetters(dlqCtx)
	cancelDLQ()
	var rep audit.Report
	var auditErr error
	auditResult := "skipped (a service process exited on its own)"
	if len(crashed) == 0 {
		rep, auditErr = audit.Settle(ctx, s.Clients(), audit.Scope{CustomerIDs: res.CustomerIDs, SKUs: res.SKUs, GatewayURL: s.GatewayURL()}, auditBound)
		auditResult = fmt.Sprintf("%d orders, %d pending, %d violations", rep.Orders, rep.Pending, len(rep.Violations))
	}

	// Figures.
	ends := load.Ends()
	list := events.list // every writer has finished
	slices.SortFunc(list, func(a, b disruption) int { return a.at.Compare(b.at) })
	for i := range list {
		list[i].drained = drainedAfter(ends, list[i].at)
	}
	fig := figures{
		processes: processCounts(s), startedIn: startedIn, placingFor: placingFor, rolled: rolled, total: time.Since(began),
		res: res, retried: orders.retriedCount(), spread: orders.spread(s), events: list,
		dlq: stack.DeadLetterSummary(dls), dlqCount: len(dls), audit: auditResult,
	}
	fig.log(t)
	if path, err := reportPath(); err != nil {
		t.Logf("report: %v", err)
	} else {
		stack.AppendReport(t, path, fig.line())
	}

	// Verdicts.
	for _, c := range crashed {
		t.Error(c)
	}
	for _, err := range errs {
		t.Error(err)
	}
	if res.Placed == 0 || res.Unfinished > 0 || res.Done != res.Placed {
		t.Errorf("%d orders placed, %d ended, %d did not end within %s (errors %v)", res.Placed, res.Done, res.Unfinished, orderBound, res.Errors)
	}
	if n := createErrors(res); n > 0 {
		t.Errorf("%d CreateOrder calls failed (after retrying Unavailable with the same request id): %v", n, res.Errors)
	}
	if s.Replicas(suite.Order) > 1 && len(fig.spread) < 2 {
		t.Errorf("CreateOrder reached %d order process(es) (%v), want every call spread over the %d replicas", len(fig.spread), fig.spread, s.Replicas(suite.Order))
	}
	if dlqErr != nil {
		t.Errorf("reading the dead-letter topics: %v", dlqErr)
	}
	if len(dls) > 0 {
		t.Errorf("%d events dead-lettered, want 0: %s\n  %s", len(dls), fig.dlq, stack.DeadLetterLines(dls, 10))
	}
	switch {
	case len(crashed) > 0:
	case auditErr != nil:
		t.Errorf("audit: %v", auditErr)
	case !rep.OK() || rep.Pending != 0:
		t.Errorf("audit: %d orders, %d pending, violations:\n  %s", rep.Orders, rep.Pending, strings.Join(rep.Violations, "\n  "))
	}
}

// roll restarts every process of the service as a Deployment's rolling
// update does: for each process running now, start a new one in a free
// slot, wait until it is ready, then SIGTERM the old one.
func roll(ctx context.Context, s *stack.Stack, name string, events *eventLog) error {
	for _, old := range runningSlots(s, name) {
		free := -1
		for slot := range s.Slots(name) {
			if !s.RunningReplica(name, slot) {
				free = slot
				break
			}
		}
		if free < 0 {
			return fmt.Errorf("rolling restart of %s: no free slot of %d", name, s.Slots(name))
		}
		started := time.Now()
		if err := s.StartReplica(ctx, name, free); err != nil {
			return fmt.Errorf("rolling restart of %s: new process: %w", name, err)
		}
		ready := time.Since(started)
		at := time.Now()
		if err := s.StopReplica(name, old); err != nil {
			return fmt.Errorf("rolling restart of %s: old process: %w", name, err)
		}
		events.add(disruption{kind: "rolling", process: label(name, old), at: at, replacementReady: ready})
	}
	return nil
}

// killOne kills -9 the service's first running process and, downFor later,
// starts a replacement in its slot (as the kubelet restarts a container).
func killOne(ctx context.Context, s *stack.Stack, name string, events *eventLog) error {
	slots := runningSlots(s, name)
	if len(slots) == 0 {
		return fmt.Errorf("kill -9 of %s: no process running", name)
	}
	slot := slots[0]
	at := time.Now()
	if err := s.KillReplica(name, slot); err != nil {
		return err
	}
	sleep(ctx, downFor)
	started := time.Now()
	if err := s.StartReplica(ctx, name, slot); err != nil {
		return fmt.Errorf("replacement after the kill -9 of %s: %w", label(name, slot), err)
	}
	events.add(disruption{kind: "kill9", process: label(name, slot), at: at, replacementReady: time.Since(started)})
	return nil
}

func runningSlots(s *stack.Stack, name string) []int {
	var out []int
	for slot := range s.Slots(name) {
		if s.RunningReplica(name, slot) {
			out = append(out, slot)
		}
	}
	return out
}

func label(name string, slot int) string { return fmt.Sprintf("%s#%d", name, slot) }

// drainedAfter is how long after at the last order that was in flight at
// at (placed before, not ended before) ended; 0 when none was in flight,
// -1 when one of them never ended.
func drainedAfter(ends []bench.OrderEnd, at time.Time) time.Duration {
	var last time.Duration
	for _, e := range ends {
		if !e.Placed.Before(at) || e.Ended.Before(at) {
			continue
		}
		if e.Outcome == "" {
			return -1
		}
		last = max(last, e.Ended.Sub(at))
	}
	return last
}

func processCounts(s *stack.Stack) string {
	var parts []string
	for _, name := range suite.Services {
		parts = append(parts, fmt.Sprintf("%s×%d", name, s.Replicas(name)))
	}
	return strings.Join(parts, " ")
}

func createErrors(res bench.Result) int {
	n := 0
	for call, c := range res.Errors {
		if strings.HasPrefix(call, "CreateOrder") {
			n += c
		}
	}
	return n
}

// reportPath is $SAGASUITE_REPLICAS_REPORT, default $SAGASUITE_HOME/reports/replicas.log.
func reportPath() (string, error) {
	return stack.ReportPath("SAGASUITE_REPLICAS_REPORT", "replicas.log")
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
