package outbox

// Relays of several replicas on one store (real MariaDB and Kafka): one is
// active, a standby takes over when the active one dies or freezes, and a
// relay that loses its lock stops before its next batch even with a backlog.

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// timedPublisher publishes through a real producer and records when each
// call started and how many rows it carried.
type timedPublisher struct {
	pub Publisher
	mu  sync.Mutex
	log []timedCall
}

type timedCall struct {
	start time.Time
	rows  int
}

func (p *timedPublisher) Publish(ctx context.Context, msgs ...bus.Message) error {
	p.mu.Lock()
	p.log = append(p.log, timedCall{start: time.Now(), rows: len(msgs)})
	p.mu.Unlock()
	return p.pub.Publish(ctx, msgs...)
}

func (p *timedPublisher) rows() (n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.log {
		n += c.rows
	}
	return n
}

// callsFrom lists the calls that started at or after t.
func (p *timedPublisher) callsFrom(t time.Time) (calls []timedCall) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.log {
		if !c.start.Before(t) {
			calls = append(calls, c)
		}
	}
	return calls
}

// deliveryCount counts deliveries on the fixture's topic, and distinct event ids.
type deliveryCount struct {
	mu       sync.Mutex
	ids      map[string]int
	total    atomic.Int32
	distinct atomic.Int32
}

func (f fixture) countDeliveries(t *testing.T) *deliveryCount {
	d := &deliveryCount{ids: map[string]int{}}
	f.consume(t, func(_ context.Context, env *eventsv1.Envelope) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.total.Add(1)
		if d.ids[env.GetEventId()]++; d.ids[env.GetEventId()] == 1 {
			d.distinct.Add(1)
		}
		return nil
	})
	return d
}

func (f fixture) writeBacklog(t *testing.T, n, keys int) {
	t.Helper()
	orders := make([]string, keys)
	for i := range orders {
		orders[i] = events.NewID()
	}
	const perTx = 500
	for i := 0; i < n; i += perTx {
		var msgs []bus.Message
		for j := i; j < min(i+perTx, n); j++ {
			msgs = append(msgs, f.message(t, orders[j%keys], fmt.Sprintf("backlog-%d", j)))
		}
		f.write(t, msgs...)
	}
}

func (f fixture) lockHolder(t *testing.T, lock string) int64 {
	t.Helper()
	var database string
	if err := f.db.QueryRow("SELECT DATABASE()").Scan(&database); err != nil {
		t.Fatal(err)
	}
	var id sql.NullInt64
	if err := f.db.QueryRow("SELECT IS_USED_LOCK(?)", scopedLockName(lock, database)).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id.Int64
}

// The active relay's lock connection is killed while it works through a
// backlog of 3,000 rows in batches of 10: it publishes at most the one batch
// it had already checked the lock for, none after it noticed the loss, and the
// standby publishes the rest. Every row is delivered; the only duplicates are
// that one batch.
func TestRelayThatLosesItsLockMidBacklogStopsBeforeItsNextBatch(t *testing.T) {
	const rows, batch = 3000, 10
	f := newFixture(t, 3)
	lock := testenv.UniqueName("relay-")
	cfg := RelayConfig{PollInterval: 5 * time.Millisecond, LockName: lock, BatchSize: batch}
	pubA, pubB := &timedPublisher{pub: f.producer}, &timedPublisher{pub: f.producer}
	relayA := NewRelay(f.db, pubA, cfg)
	runRelay(t, relayA)
	waitFor(t, "relay A active", func() bool { return relayA.Status().State == StateActive })
	relayB := NewRelay(f.db, pubB, cfg)
	runRelay(t, relayB)
	waitFor(t, "relay B standing by", func() bool { return relayB.Status().State == StateStandby })
	delivered := f.countDeliveries(t)

	f.writeBacklog(t, rows, 50)
	waitFor(t, "relay A halfway into the backlog", func() bool { return pubA.rows() >= 300 })
	holder := f.lockHolder(t, lock)
	beforeKill := time.Now()
	if _, err := f.db.Exec(fmt.Sprintf("KILL CONNECTION %d", holder)); err != nil {
		t.Fatalf("kill relay A's lock connection %d: %v", holder, err)
	}
	killed := time.Now()
	waitFor(t, "relay A to notice the loss", func() bool { return relayA.Status().State == StateStandby })
	noticed := relayA.Status().Since
	waitFor(t, "the backlog to drain", func() bool { return f.backlog(t) == 0 })
	waitFor(t, "every row delivered", func() bool { return delivered.distinct.Load() == rows })

	if early := len(pubB.log) - len(pubB.callsFrom(beforeKill)); early != 0 {
		t.Errorf("relay B published %d batches while relay A held the lock, want none (one active relay)", early)
	}
	afterKill := pubA.callsFrom(killed)
	if len(afterKill) > 1 || (len(afterKill) == 1 && afterKill[0].rows > batch) {
		t.Errorf("relay A started %d publish calls after its lock was killed (%v), want at most the one batch it had checked", len(afterKill), afterKill)
	}
	if late := pubA.callsFrom(noticed); len(late) != 0 {
		t.Errorf("relay A published %d batches after it noticed the loss at %s", len(late), noticed.Format(time.StampMicro))
	}
	tookOver := pubB.callsFrom(killed)
	if len(tookOver) == 0 {
		t.Fatal("relay B never published")
	}
	if s := relayB.Status(); s.State != StateActive {
		t.Errorf("relay B %+v, want active", s)
	}
	time.Sleep(200 * time.Millisecond) // let a late duplicate arrive before counting
	if dup := int(delivered.total.Load()) - rows; dup > batch {
		t.Errorf("%d duplicate deliveries, want at most one batch (%d)", dup, batch)
	}
	t.Logf("relay A: %d rows before the kill, noticed the loss %s after it; relay B's first batch %s after the kill; B published %d rows",
		pubA.rows(), noticed.Sub(killed).Round(time.Millisecond), tookOver[0].start.Sub(killed).Round(time.Millisecond), pubB.rows())
}

// relayChild is a relay in a process of its own (this test binary run again):
// the parent can kill it with SIGKILL or freeze it with SIGSTOP as a node
// failure would. It reports "state S" on each status change and "published N"
// (a running count of batches) after each batch, one line each.
type relayChild struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	state string
	lines []childLine
}

type childLine struct {
	at   time.Time
	text string
}

const childEnv = "OUTBOX_RELAY_CHILD_DSN"

func startRelayChild(t *testing.T, dsn, lock string, idleTimeout time.Duration) *relayChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRelayChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+dsn, "OUTBOX_RELAY_CHILD_LOCK="+lock,
		"OUTBOX_RELAY_CHILD_IDLE="+idleTimeout.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the child exits when this closes (parent gone)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &relayChild{cmd: cmd}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, childLine{at: time.Now(), text: sc.Text()})
			if s, ok := strings.CutPrefix(sc.Text(), "state "); ok {
				c.state = s
			}
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return c
}

func (c *relayChild) State() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// batches is the child's last reported batch count.
func (c *relayChild) batches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.lines) - 1; i >= 0; i-- {
		if s, ok := strings.CutPrefix(c.lines[i].text, "published "); ok {
			n, _ := strconv.Atoi(s)
			return n
		}
	}
	return 0
}

// TestRelayChildProcess is the child's body; as a test of its own it does nothing.
func TestRelayChildProcess(t *testing.T) {
	dsn := os.Getenv(childEnv)
	if dsn == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a bound if the parent vanishes
	defer cancel()
	go func() { _, _ = bufio.NewReader(os.Stdin).ReadByte(); cancel() }()
	db, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	idle, err := time.ParseDuration(os.Getenv("OUTBOX_RELAY_CHILD_IDLE"))
	if err != nil {
		t.Fatal(err)
	}
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	var batches atomic.Int32
	pub := publisherFunc(func(ctx context.Context, msgs ...bus.Message) error {
		err := producer.Publish(ctx, msgs...)
		if err == nil {
			say("published %d", batches.Add(1))
		}
		return err
	})
	relay := NewRelay(db, pub, RelayConfig{PollInterval: 5 * time.Millisecond, LockName: os.Getenv("OUTBOX_RELAY_CHILD_LOCK"),
		BatchSize: 10, LockCheckInterval: 100 * time.Millisecond, LockIdleTimeout: idle})
	go func() {
		last := State("")
		for ctx.Err() == nil {
			if s := relay.Status().State; s != last {
				last = s
				say("state %s", s)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_ = relay.Run(ctx)
}

type publisherFunc func(ctx context.Context, msgs ...bus.Message) error

func (f publisherFunc) Publish(ctx context.Context, msgs ...bus.Message) error {
	return f(ctx, msgs...)
}

// The active relay is another process, killed with SIGKILL mid-backlog: the
// server frees its lock as the connection drops, and the standby publishes
// the rest; every row is delivered.
func TestStandbyRelayTakesOverFromAKilledProcess(t *testing.T) {
	const rows = 2000
	f := newFixture(t, 3)
	lock := testenv.UniqueName("relay-")
	child := startRelayChild(t, f.dsn, lock, 30*time.Second)
	waitFor(t, "the child relay active", func() bool { return child.State() == string(StateActive) })
	pubB := &timedPublisher{pub: f.producer}
	standby := NewRelay(f.db, pubB, RelayConfig{PollInterval: 5 * time.Millisecond, LockName: lock, BatchSize: 10})
	runRelay(t, standby)
	waitFor(t, "the in-process relay standing by", func() bool { return standby.Status().State == StateStandby })
	delivered := f.countDeliveries(t)

	f.writeBacklog(t, rows, 50)
	waitFor(t, "the child halfway into the backlog", func() bool { return child.batches() >= 30 })
	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitFor(t, "the standby to take over", func() bool { return len(pubB.callsFrom(killed)) > 0 })
	takeover := pubB.callsFrom(killed)[0].start.Sub(killed)
	waitFor(t, "the backlog to drain", func() bool { return f.backlog(t) == 0 })
	waitFor(t, "every row delivered", func() bool { return delivered.distinct.Load() == rows })
	if pubB.rows() >= rows {
		t.Errorf("the standby published %d rows, all of them: the child published none before the kill", pubB.rows())
	}
	// A generous bound: the lock is freed when the server sees the TCP
	// connection close, which the kernel sends at once for a killed process.
	if takeover > 30*time.Second {
		t.Errorf("takeover took %s", takeover)
	}
	t.Logf("child published %d batches before SIGKILL; standby's first batch %s after it; standby published %d rows",
		child.batches(), takeover.Round(time.Millisecond), pubB.rows())
}

// The active relay's process is frozen (SIGSTOP, as a partitioned or hung
// node: no FIN reaches the server): the lock connection's wait_timeout ends
// it, the standby takes over, and the frozen relay, resumed, publishes at
// most the batch it was in and stands by.
func TestStandbyRelayTakesOverFromAFrozenProcess(t *testing.T) {
	const rows = 2000
	const idle = 2 * time.Second
	f := newFixture(t, 3)
	lock := testenv.UniqueName("relay-")
	child := startRelayChild(t, f.dsn, lock, idle)
	waitFor(t, "the child relay active", func() bool { return child.State() == string(StateActive) })
	pubB := &timedPublisher{pub: f.producer}
	standby := NewRelay(f.db, pubB, RelayConfig{PollInterval: 5 * time.Millisecond, LockName: lock, BatchSize: 10})
	runRelay(t, standby)
	waitFor(t, "the in-process relay standing by", func() bool { return standby.Status().State == StateStandby })
	delivered := f.countDeliveries(t)

	f.writeBacklog(t, rows, 50)
	waitFor(t, "the child into the backlog", func() bool { return child.batches() >= 30 })
	if err := child.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	waitFor(t, "the standby to take over", func() bool { return len(pubB.callsFrom(frozen)) > 0 })
	takeover := pubB.callsFrom(frozen)[0].start.Sub(frozen)
	time.Sleep(100 * time.Millisecond) // the child's last lines before the freeze are read
	before := child.batches()
	if err := child.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resumed child to stand by", func() bool { return child.State() == string(StateStandby) })
	waitFor(t, "the backlog to drain", func() bool { return f.backlog(t) == 0 })
	waitFor(t, "every row delivered", func() bool { return delivered.distinct.Load() == rows })
	if after := child.batches() - before; after > 1 {
		t.Errorf("the resumed child published %d batches, want at most the one it was in when frozen", after)
	}
	if takeover > idle+30*time.Second {
		t.Errorf("takeover took %s with a %s lock idle timeout", takeover, idle)
	}
	t.Logf("lock idle timeout %s: standby's first batch %s after the freeze; resumed child published %d more batches",
		idle, takeover.Round(time.Millisecond), child.batches()-before)
}
