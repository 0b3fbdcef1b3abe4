// Package stack runs the whole sagasuite as five separate processes against
// the local real stack (Kafka, MariaDB, FerretDB, Cassandra), for end-to-end
// tests: each Stack gets its own databases, least-privilege MySQL users,
// Mongo database, Cassandra keyspace and Kafka topic prefix, so stacks never
// see each other's data; its services listen on fixed loopback ports (below
// the ephemeral range) that survive restarts; tests kill, stop and restart
// services at will; and everything the stack created is dropped at the end.
//
//	dir := t.TempDir()
//	if err := stack.Build(ctx, dir); err != nil { t.Fatal(err) }
//	s := stack.New(t, stack.Options{BinDir: dir})
//	if err := s.Start(ctx); err != nil { t.Fatal(err) }
//	s.Clients().Order.CreateOrder(ctx, …)
//	s.Kill(suite.Payment); s.StartService(ctx, suite.Payment)
//
// Nothing here skips: a server of the local stack that is not there fails
// the test (run `make infra-up`).
package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/services/payment"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// Options tune a Stack. Zero values take the defaults.
type Options struct {
	// BinDir holds the binaries Build made. Empty: New builds them into a
	// directory of the test (build once in TestMain when tests share them).
	BinDir string
	// Services to provision and start; nil means all five.
	Services []string
	// Replicas is how many processes of a service Start runs, each on its
	// own gRPC and ops ports, all on the service's one store and consumer
	// group (absent: 1). A service with more than one gets a spare port
	// slot besides, so a rolling restart can start the new process before
	// the old one stops. Clients spread their calls over the replicas
	// (round robin).
	Replicas map[string]int
	// Env overrides per service (name → variable → value), applied over
	// what the stack sets; Stack.Env changes them later.
	Env map[string]map[string]string
	// ReadyTimeout bounds the wait for a started service's /readyz (3 min:
	// a bound for a hung start, not a speed requirement).
	ReadyTimeout time.Duration
	// StopTimeout bounds the wait after SIGTERM before SIGKILL (20 s).
	StopTimeout time.Duration
	// LogLevel of every service (info).
	LogLevel string
	// Servers the stack uses; empty fields take the shared local stack's
	// (libs/testenv). Outage tests point one of them at a private instance.
	Servers Servers
}

// Servers are the addresses of the broker and the stores.
type Servers struct {
	KafkaBrokers   string // comma-separated host:port list
	MySQLAdminDSN  string // may create databases and users; no database name
	MongoURI       string
	CassandraHosts string // comma-separated host:port list
}

// withDefaults fills the empty fields from libs/testenv.
func (v Servers) withDefaults() Servers {
	for _, f := range []struct {
		field *string
		def   func() string
	}{
		{&v.KafkaBrokers, testenv.KafkaBrokers}, {&v.MySQLAdminDSN, testenv.MySQLAdminDSN},
		{&v.MongoURI, testenv.MongoURI}, {&v.CassandraHosts, testenv.CassandraHosts},
	} {
		if *f.field == "" {
			*f.field = f.def()
		}
	}
	return v
}

// Stack is one isolated suite. Its methods are safe for concurrent use.
type Stack struct {
	t    testing.TB
	opts Options

	id          string // base of every name the stack creates
	topicPrefix string
	mysql       map[string]mysqlAccount // order, inventory, payment
	mongoDB     string
	keyspace    string
	ports       map[string][]servicePorts // per service, one per slot
	logDir      string
	keys        *suite.Keys         // the stack's signing key: its services verify, its clients mint
	addrs       map[string][]string // gRPC addresses per service, every slot
	conns       *suite.Conns
	gatewayURL  string // the simulated payment gateway, served by this process

	mu          sync.Mutex
	env         map[string]map[string]string // overrides
	procs       map[string][]*process        // per service, one per slot (nil: never started)
	provisioned bool
	closed      bool
}

type mysqlAccount struct {
	database, user, password, dsn string
}

type servicePorts struct {
	grpc, ops int
}

// mysqlServices are the services with a MySQL store.
var mysqlServices = []string{suite.Order, suite.Inventory, suite.Payment}

// New prepares a stack (names, ports, clients; the binaries when
// opts.BinDir is empty) without touching any server, and registers its
// cleanup: stop every process, print their log tails when the test failed,
// drop everything provisioned.
func New(t testing.TB, opts Options) *Stack {
	t.Helper()
	if opts.Services == nil {
		opts.Services = suite.Services
	}
	for _, name := range opts.Services {
		if !slices.Contains(suite.Services, name) {
			t.Fatalf("stack: unknown service %q (want one of %v)", name, suite.Services)
		}
	}
	for name, n := range opts.Replicas {
		if !slices.Contains(suite.Services, name) || n < 1 {
			t.Fatalf("stack: Replicas[%q] = %d: want a service of %v and at least 1", name, n, suite.Services)
		}
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 3 * time.Minute
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 20 * time.Second
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	opts.Servers = opts.Servers.withDefaults()
	if opts.BinDir == "" {
		opts.BinDir = t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // cold builds on 2 cores are slow
		err := build(ctx, opts.BinDir, servicePackages(opts.Services))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}

	id := testenv.UniqueName("e2e_")
	var err error
	s := &Stack{
		t:           t,
		opts:        opts,
		id:          id,
		topicPrefix: strings.ReplaceAll(id, "_", "-") + ".",
		mysql:       map[string]mysqlAccount{},
		mongoDB:     id + "_shipping",
		keyspace:    id + "_notification",
		ports:       map[string][]servicePorts{},
		logDir:      t.TempDir(),
		env:         map[string]map[string]string{},
		procs:       map[string][]*process{},
	}
	// A signing key per stack: its services accept only its tokens
	// (<P>_AUTH_* in environ), and its clients send a service token.
	if s.keys, err = suite.NewKeys(t.TempDir()); err != nil {
		t.Fatalf("stack: signing key: %v", err)
	}
	for name, vars := range opts.Env {
		for k, v := range vars {
			s.setEnv(name, k, v)
		}
	}

	adminCfg, err := mysql.ParseDSN(opts.Servers.MySQLAdminDSN)
	if err != nil {
		t.Fatalf("stack: parse the MySQL admin DSN: %v", err)
	}
	for _, name := range mysqlServices {
		acct := mysqlAccount{database: id + "_" + name, user: id + "_" + name, password: testenv.UniqueName("pw")}
		cfg := adminCfg.Clone()
		cfg.User, cfg.Passwd, cfg.DBName = acct.user, acct.password, acct.database
		acct.dsn = cfg.FormatDSN()
		s.mysql[name] = acct
	}

	slots := 0
	for _, name := range suite.Services {
		slots += s.slotCount(name)
	}
	ports, err := reservePorts(2*slots + 1) // + the payment gateway's
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	t.Cleanup(func() { releasePorts(ports) })
	s.startGateway(loopback(ports[len(ports)-1]))
	addrs := map[string][]string{}
	for _, name := range suite.Services {
		for range s.slotCount(name) {
			s.ports[name] = append(s.ports[name], servicePorts{grpc: ports[0], ops: ports[1]})
			addrs[name] = append(addrs[name], loopback(ports[0]))
			ports = ports[2:]
		}
		s.procs[name] = make([]*process, s.slotCount(name))
	}
	s.addrs = addrs
	if s.conns, err = suite.DialReplicas(addrs, suite.WithToken(s.keys.Tool("e2e-stack"))); err != nil {
		t.Fatalf("stack: %v", err)
	}
	t.Cleanup(s.cleanup)
	return s
}

// Start provisions the stores (once) and starts every service of the
// stack, all at once, returning when each answers /readyz. Of a replicated
// service the first process starts first and the others once it is ready:
// it has migrated the empty store by then, so the others never race it
// (services/README.md says which services lock their migrations).
func (s *Stack) Start(ctx context.Context) error {
	if err := s.Provision(ctx); err != nil {
		return err
	}
	errs := make([]error, len(s.opts.Services))
	var wg sync.WaitGroup
	for i, name := range s.opts.Services {
		wg.Go(func() {
			if errs[i] = s.StartReplica(ctx, name, 0); errs[i] != nil {
				return
			}
			more := make([]error, s.Replicas(name))
			var rest sync.WaitGroup
			for slot := 1; slot < s.Replicas(name); slot++ {
				rest.Go(func() { more[slot] = s.StartReplica(ctx, name, slot) })
			}
			rest.Wait()
			errs[i] = errors.Join(more...)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Replicas is how many processes of the named service Start runs.
func (s *Stack) Replicas(name string) int {
	if n := s.opts.Replicas[name]; n > 0 {
		return n
	}
	return 1
}

// Slots is how many process slots (port pairs) the named service has:
// its replicas, plus a spare one when it has more than one.
func (s *Stack) Slots(name string) int { return s.slotCount(name) }

func (s *Stack) slotCount(name string) int {
	if n := s.Replicas(name); n > 1 {
		return n + 1
	}
	return 1
}

// startGateway serves the simulated payment gateway from the test process,
// its ledger in a file of its own: payment processes (killed, restarted, two
// at once) reach it by PAYMENT_GATEWAY_URL as they would a real processor,
// and the audit reads its ledger (GatewayURL). Registered before the stack's
// cleanup, so it stops after every process.
func (s *Stack) startGateway(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatalf("stack: payment gateway: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- payment.ServeGateway(ctx, ln, payment.GatewayConfig{LedgerPath: filepath.Join(s.logDir, "gateway-ledger.jsonl")})
	}()
	s.t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			s.t.Errorf("stack: payment gateway: %v", err)
		}
	})
	s.gatewayURL = "http://" + addr
}

// GatewayURL is the simulated payment gateway's base URL (its ledger is
// what the audit compares with payment: audit.Scope.GatewayURL).
func (s *Stack) GatewayURL() string { return s.gatewayURL }

// Clients are gRPC clients of the five services; they reconnect to a
// restarted service by themselves, and spread calls over a replicated
// service's running processes (round robin).
func (s *Stack) Clients() suite.Clients { return s.conns.Clients }

// Keys is the stack's signing key pair: mint a customer's or an operator's
// token with it (Keys().Customer(id), Keys().Mint).
func (s *Stack) Keys() *suite.Keys { return s.keys }

// ClientsAs are clients of the stack that send src's token instead of the
// stack's service token (a customer's, a wrong one, none: StaticToken("")).
// They are closed when the test ends.
func (s *Stack) ClientsAs(src suite.TokenSource) suite.Clients {
	s.t.Helper()
	conns, err := suite.DialReplicas(s.addrs, suite.WithToken(src))
	if err != nil {
		s.t.Fatalf("stack: %v", err)
	}
	s.t.Cleanup(func() { _ = conns.Close() })
	return conns.Clients
}

// AuthorizeAdmin sets the stack's service token on a request to a
// service's ops /admin/* API.
func (s *Stack) AuthorizeAdmin(req *http.Request) error {
	return suite.Authorize(req, s.keys.Tool("e2e-stack"))
}

// GRPCAddr is where the named service's gRPC API listens (host:port): its
// first slot's.
func (s *Stack) GRPCAddr(name string) string { return s.GRPCAddrOf(name, 0) }

// OpsAddr is where the named service's ops HTTP server (/readyz) listens:
// its first slot's.
func (s *Stack) OpsAddr(name string) string { return s.OpsAddrOf(name, 0) }

// GRPCAddrOf is where the process in the named service's slot listens.
func (s *Stack) GRPCAddrOf(name string, slot int) string {
	return loopback(s.slotPorts(name, slot).grpc)
}

// OpsAddrOf is where the ops server of the process in the slot listens.
func (s *Stack) OpsAddrOf(name string, slot int) string { return loopback(s.slotPorts(name, slot).ops) }

// slotPorts are the slot's ports; zero ports (an address nothing listens
// on) for a slot the service does not have.
func (s *Stack) slotPorts(name string, slot int) servicePorts {
	if ps := s.ports[name]; slot >= 0 && slot < len(ps) {
		return ps[slot]
	}
	return servicePorts{}
}

// TopicPrefix namespaces the stack's Kafka topics and consumer groups.
func (s *Stack) TopicPrefix() string { return s.topicPrefix }

// MySQLDSN is the named SQL service's DSN (its own user on its own database).
func (s *Stack) MySQLDSN(name string) string { return s.mysql[name].dsn }

// MongoDatabase is the shipping service's database.
func (s *Stack) MongoDatabase() string { return s.mongoDB }

// Keyspace is the notification service's Cassandra keyspace.
func (s *Stack) Keyspace() string { return s.keyspace }

// LogPath is the named service's log file (JSON lines, every run appended):
// its first slot's.
func (s *Stack) LogPath(name string) string { return s.LogPathOf(name, 0) }

// LogPathOf is the log file of the processes run in the named service's slot.
func (s *Stack) LogPathOf(name string, slot int) string {
	if slot == 0 {
		return filepath.Join(s.logDir, name+".log")
	}
	return filepath.Join(s.logDir, fmt.Sprintf("%s-%d.log", name, slot))
}

// Servers are the addresses the stack's services use.
func (s *Stack) Servers() Servers { return s.opts.Servers }

// Env sets a variable of the named service's environment for its next
// start (e.g. Env(suite.Order, "ORDER_DEADLINE", "2s"), then Restart).
func (s *Stack) Env(name, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setEnv(name, key, value)
}

func (s *Stack) setEnv(name, key, value string) {
	if s.env[name] == nil {
		s.env[name] = map[string]string{}
	}
	s.env[name][key] = value
}

// TestOrderDeadline is the order deadline a stack gives its orders unless
// ORDER_DEADLINE is overridden: minutes, so no saga times out because the
// machine is busy. A test about the deadline sets a short one (and stalls
// the saga it times out).
const TestOrderDeadline = "10m"

// environ is the whole environment of the named service's process in the
// slot: a few basics of the test's own, the stack's settings, then the
// overrides.
func (s *Stack) environ(name string, slot int) []string {
	p := strings.ToUpper(name) + "_"
	vars := map[string]string{
		p + "GRPC_ADDR":          s.GRPCAddrOf(name, slot),
		p + "OPS_ADDR":           s.OpsAddrOf(name, slot),
		p + "LOG_FORMAT":         "json",
		p + "LOG_LEVEL":          s.opts.LogLevel,
		p + "SHUTDOWN_TIMEOUT":   "5s",
		p + "KAFKA_BROKERS":      s.opts.Servers.KafkaBrokers,
		p + "KAFKA_TOPIC_PREFIX": s.topicPrefix,
	}
	switch name {
	case suite.Order, suite.Inventory, suite.Payment:
		vars[p+"MYSQL_DSN"] = s.mysql[name].dsn
		if name == suite.Payment {
			vars[p+"GATEWAY_URL"] = s.gatewayURL
		}
		if name == suite.Order {
			vars[p+"DEADLINE"] = TestOrderDeadline
			// The admission bound follows the deadline (backlog ÷ throughput
			// must stay under it): with minutes, bursts of test orders are
			// not to be refused. The overload test and benchmark set their own.
			vars[p+"MAX_PENDING_ORDERS"] = "100000"
		}
	case suite.Shipping:
		vars[p+"MONGO_URI"] = s.opts.Servers.MongoURI
		vars[p+"MONGO_DATABASE"] = s.mongoDB
	case suite.Notification:
		vars[p+"CASSANDRA_HOSTS"] = s.opts.Servers.CassandraHosts
		vars[p+"CASSANDRA_KEYSPACE"] = s.keyspace
	}
	for k, v := range s.keys.ServiceEnv(name) {
		vars[k] = v
	}
	s.mu.Lock()
	for k, v := range s.env[name] {
		vars[k] = v
	}
	s.mu.Unlock()
	env := make([]string, 0, len(vars)+4)
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// cleanup runs when the test ends: stop the processes, show their logs if
// the test failed, drop what was provisioned, close the clients.
func (s *Stack) cleanup() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()

	for _, problem := range s.stopAll() {
		s.t.Error(problem)
	}
	if s.t.Failed() {
		for _, name := range s.opts.Services {
			for slot := range s.slotCount(name) {
				if tail := logTail(s.LogPathOf(name, slot), 40); tail != "" {
					s.t.Logf("stack: last lines of %s's log (%s):\n%s", procLabel(name, slot), s.LogPathOf(name, slot), tail)
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.deprovision(ctx); err != nil {
		s.t.Errorf("stack: clean up: %v", err)
	}
	if err := s.conns.Close(); err != nil {
		s.t.Logf("stack: close clients: %v", err)
	}
}

func (s *Stack) logf(format string, args ...any) { s.t.Logf("stack: "+format, args...) }

func loopback(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
