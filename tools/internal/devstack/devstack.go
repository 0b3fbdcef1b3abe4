// Package devstack runs the whole sagasuite in one process with zero setup:
// the five services through their own Run functions (the code paths their
// mains use), wired to in-process servers that speak the real wire protocols —
// Kafka (franz-go's kfake, reached by kafka-go over TCP), MySQL
// (go-mysql-server, reached by go-sql-driver/mysql), MongoDB (FerretDB v1
// embedded, SQLite handler in a temporary directory, reached by
// mongo-driver). No Cassandra server exists in Go: the notification service
// keeps its saga log and notifications in memory (the stand-in store that
// passes the same contract test). Each server can be replaced by an external
// one (e.g. the local real stack from `make infra-up`).
//
// go-mysql-server loses writes under concurrent connections, so every SQL
// service gets exactly one connection to it; correctness under concurrency
// is proven on the real stack (../../../shared/DESIGN.md, "Run modes").
//
// `sagactl dev` (`make run`) is the command; tests and the demo use Start.
package devstack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/logging"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/telemetry"
	"github.com/sagasuite/sagasuite/services/inventory"
	"github.com/sagasuite/sagasuite/services/notification"
	"github.com/sagasuite/sagasuite/services/order"
	"github.com/sagasuite/sagasuite/services/payment"
	"github.com/sagasuite/sagasuite/services/shipping"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// Default listen addresses: the services' documented local ports
// (services/README.md) and the in-process servers' (all below 32768, outside
// Linux's ephemeral range).
var (
	DefaultGRPC = suite.Addrs{Order: "127.0.0.1:50051", Inventory: "127.0.0.1:50052", Payment: "127.0.0.1:50053",
		Shipping: "127.0.0.1:50054", Notification: "127.0.0.1:50055"}
	DefaultOps = suite.Addrs{Order: "127.0.0.1:8081", Inventory: "127.0.0.1:8082", Payment: "127.0.0.1:8083",
		Shipping: "127.0.0.1:8084", Notification: "127.0.0.1:8085"}
	// DefaultWeb: the browser listeners (gRPC-Web and Connect).
	DefaultWeb = suite.Addrs{Order: "127.0.0.1:8091", Inventory: "127.0.0.1:8092", Payment: "127.0.0.1:8093",
		Shipping: "127.0.0.1:8094", Notification: "127.0.0.1:8095"}
	// DefaultWebOrigins may call the browser listeners: the web console's
	// address, under both names a developer may type.
	DefaultWebOrigins = []string{"http://127.0.0.1:8090", "http://localhost:8090"}
)

const (
	DefaultKafkaAddr = "127.0.0.1:29092"
	DefaultMySQLAddr = "127.0.0.1:23306" // order; inventory and payment on the next two ports
	DefaultMongoAddr = "127.0.0.1:27018"
	// DefaultGatewayAddr is where the simulated payment gateway listens
	// (HTTP; payment reaches it by URL, the audit reads its ledger there).
	DefaultGatewayAddr = "127.0.0.1:8086"
	// DefaultExternalTopicPrefix namespaces topics and consumer groups on an
	// external Kafka, which may be shared (the local real stack is).
	DefaultExternalTopicPrefix = "sagasuite-dev."
	// Namespace prefixes the stack's MySQL databases, its MongoDB database
	// and its Cassandra keyspace, so external servers can be shared.
	Namespace = "sagasuite_dev_"
)

// Options configures Start. The zero value is the documented default.
type Options struct {
	// GRPC and Ops are the services' listen addresses; an empty field takes
	// the one from DefaultGRPC/DefaultOps; "127.0.0.1:0" picks a free port.
	GRPC, Ops suite.Addrs
	// Web are the browser listeners' addresses; an empty field takes
	// DefaultWeb's, or port 0 when the service's gRPC address has port 0
	// (tests, replays), so parallel stacks do not collide. WebOrigins may
	// call them (default DefaultWebOrigins).
	Web        suite.Addrs
	WebOrigins []string
	// KafkaAddr, MySQLAddr and MongoAddr are where the in-process servers
	// listen (defaults DefaultKafkaAddr …; port 0 picks a free one). There
	// is one MySQL server per SQL service: order's on MySQLAddr, inventory's
	// and payment's on the next two ports.
	KafkaAddr, MySQLAddr, MongoAddr string
	// GatewayAddr is where the simulated payment gateway listens (default
	// DefaultGatewayAddr). GatewayLedger is its ledger file (default: a
	// temporary file with in-process MySQL; with an external MySQL, whose
	// payments outlive the stack, dev-gateway-ledger.jsonl in the user's
	// cache directory, so the two keep agreeing across runs).
	GatewayAddr, GatewayLedger string

	// External servers, each used instead of the in-process one when set.
	// Kafka: bootstrap brokers. MySQLDSN: a go-sql-driver DSN whose user may
	// create databases (its database part is ignored; the stack uses
	// Options.Namespace+service). MongoURI: a MongoDB URI. Cassandra: contact points
	// (without them notification keeps its data in memory).
	Kafka     []string
	MySQLDSN  string
	MongoURI  string
	Cassandra []string
	// TopicPrefix namespaces Kafka topics and consumer groups (default: none
	// in-process, DefaultExternalTopicPrefix on an external Kafka).
	TopicPrefix string
	// Namespace prefixes the MySQL databases, the MongoDB database and the
	// Cassandra keyspace (default the const Namespace): letters, digits and
	// underscores, at most MaxNamespaceLen characters (a keyspace name has
	// at most 48). A replay gives each run one of its own (fresh stores on
	// shared servers) and drops it after (DropNamespace).
	Namespace string

	// Catalog is seeded at start (idempotently); nil means DefaultCatalog,
	// an empty non-nil slice seeds nothing.
	Catalog []Product
	// OrderDeadline is how long an order may stay PENDING (default: the
	// order service's 30s).
	OrderDeadline time.Duration
	// DeadlineScanInterval is how often the order service looks for orders
	// past their deadline (default 250ms); a replay, which moves a manual
	// clock past a deadline and waits for the cancel, scans more often.
	DeadlineScanInterval time.Duration

	// Services are the services to run (default: all five, suite.Services);
	// a replay of one service runs it alone against fresh stores.
	Services []string
	// Clock is the time the services' handlers use (default: the system
	// clock); a replay sets a clock.Manual from the recorded events.
	Clock clock.Clock

	// LogLevel of the services' logs (default info) and where they go
	// (default os.Stderr, text format).
	LogLevel  config.LogLevel
	LogOutput io.Writer
	// ReadyTimeout bounds the start (default 2 minutes).
	ReadyTimeout time.Duration
	// StateFile, when set, receives the running stack's State (key,
	// tokens, addresses) once it is ready, and is removed by Stop; other
	// sagactl commands find the stack through it (`sagactl dev` uses
	// DefaultStateFile).
	StateFile string
	// Console is where the web console is served (DefaultConsoleAddr in
	// `sagactl dev`; empty: not served). ConsoleAPIs are the services'
	// browser base URLs it is told about (DefaultConsoleAPIs where unset).
	Console     string
	ConsoleAPIs suite.Addrs
}

// Stack is a running dev stack. Stop it exactly once.
type Stack struct {
	// GRPC, Ops and Web are the addresses the services listen on.
	GRPC, Ops, Web suite.Addrs
	// WebOrigins may call the Web listeners (CORS).
	WebOrigins []string
	// Servers describes what the services talk to, for the banner.
	Servers Servers
	// ReadyIn is how long Start took, from its call until all five services
	// answered /readyz with 200 and the catalog was seeded.
	ReadyIn time.Duration
	// Catalog is what was seeded.
	Catalog []Product
	// GatewayURL is the simulated payment gateway's base URL.
	GatewayURL string
	// Keys is the signing key pair the stack generated at start (in a
	// temporary directory Stop removes): its services accept the tokens it
	// mints (issuer suite.DevIssuer, audience suite.DevAudience).
	Keys *suite.Keys
	// CustomerToken (DemoCustomer) and OperatorToken (DemoOperator) are
	// the tokens the banner prints, valid for BannerTokenTTL.
	CustomerToken, OperatorToken string
	// ConsoleURL is the web console's address, when served (Options.Console).
	ConsoleURL string

	auth      authSettings
	stateFile string // Options.StateFile, once written

	reserved  map[string][]net.Listener // by service, until it starts
	svcCtx    context.Context
	svcCancel context.CancelFunc
	runs      map[string]func(context.Context, service.Runtime) error
	newRT     func(name string) service.Runtime
	listen    chan listening
	mu        sync.Mutex       // guards procs and orderDeadline
	procs     map[string]*proc // the running (or stopped) services
	// orderDeadline is the order service's deadline at its next (re)start
	// (0: the service's default); SetOrderDeadline changes it.
	orderDeadline time.Duration
	svcNames      []string // the services started, in order
	failed        chan struct{}
	failOnce      sync.Once
	failErr       error
	stops         []func() error // servers and telemetry, stopped in reverse order
	stopOnce      sync.Once
	stopErr       error
}

// proc is one service's run: its own context, and its result once ended.
type proc struct {
	cancel context.CancelFunc
	done   chan error // buffered; Run's result
}

type listening struct {
	name            string
	grpc, opsA, web net.Addr
}

// Servers says which servers the stack uses.
type Servers struct {
	Kafka                string // bootstrap address(es), comma-separated
	KafkaInProcess       bool
	TopicPrefix          string
	MySQL                []string // DSNs of order, inventory, payment (password masked)
	MySQLInProcess       bool
	Mongo                string // URI
	MongoInProcess       bool
	MongoDir             string // SQLite files of the in-process FerretDB
	MongoDatabase        string
	Cassandra            string // contact points; empty: in memory
	CassandraKeyspace    string
	NotificationInMemory bool
	GatewayLedger        string // the simulated gateway's ledger file
	GatewayLedgerTemp    bool   // removed on exit
}

// Start starts the servers (in-process unless external ones are given), the
// five services, waits until all are ready, and seeds the catalog. ctx
// bounds the start only; the stack runs until Stop. On error everything
// started is stopped again.
func Start(ctx context.Context, opts Options) (st *Stack, err error) {
	began := time.Now()
	opts = opts.withDefaults()
	if err := CheckNamespace(opts.Namespace); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()

	st = &Stack{failed: make(chan struct{}), orderDeadline: opts.OrderDeadline}
	defer func() {
		if err != nil {
			err = errors.Join(err, st.Stop())
			st = nil
		}
	}()

	if err := st.reservePorts(ctx, opts); err != nil {
		return st, err
	}
	if err := st.startAuth(ctx); err != nil {
		return st, err
	}

	// Servers.
	srv := &st.Servers
	if len(opts.Kafka) > 0 {
		srv.Kafka = strings.Join(opts.Kafka, ",")
	} else {
		broker, stop, err := startKafka(opts.KafkaAddr)
		if err != nil {
			return st, err
		}
		st.stops = append(st.stops, func() error { stop(); return nil })
		opts.Kafka, srv.Kafka, srv.KafkaInProcess = []string{broker}, broker, true
	}
	srv.TopicPrefix = opts.TopicPrefix
	if srv.TopicPrefix == "" && !srv.KafkaInProcess {
		srv.TopicPrefix = DefaultExternalTopicPrefix
	}
	// Each service creates only the topics it produces to and waits for the
	// others; creating all of them here first spares those waits, and
	// starting the services one by one in any order stays quick.
	sagaTopics := make([]bus.TopicSpec, len(events.AllTopics))
	for i, t := range events.AllTopics {
		sagaTopics[i] = bus.TopicSpec{Name: srv.TopicPrefix + t, Partitions: 3, ReplicationFactor: 1}
	}
	topicCtx, cancelTopics := context.WithTimeout(ctx, time.Minute)
	err = bus.EnsureTopics(topicCtx, opts.Kafka, sagaTopics...)
	cancelTopics()
	if err != nil {
		return st, fmt.Errorf("kafka: create saga topics: %w", err)
	}

	// MySQL: one database per SQL service. In-process, each gets a server
	// of its own: go-mysql-server shares state between the databases of one
	// server (concurrent goose runs in two databases lost the version row of
	// one, ~1 start in 10), so three servers keep the services apart.
	sqlServices := []string{suite.Order, suite.Inventory, suite.Payment}
	dsns := map[string]string{}
	maxConns := 16
	if opts.MySQLDSN == "" {
		maxConns = 1
		srv.MySQLInProcess = true
		for i, name := range sqlServices {
			addr, err := offsetPort(opts.MySQLAddr, i)
			if err != nil {
				return st, fmt.Errorf("mysql address: %w", err)
			}
			base, stop, err := startMySQL(addr)
			if err != nil {
				return st, err
			}
			st.stops = append(st.stops, stop)
			d, err := ensureDatabases(ctx, base, opts.Namespace, name)
			if err != nil {
				return st, err
			}
			dsns[name] = d[name]
		}
	} else {
		if dsns, err = ensureDatabases(ctx, opts.MySQLDSN, opts.Namespace, sqlServices...); err != nil {
			return st, err
		}
	}
	for _, name := range sqlServices {
		srv.MySQL = append(srv.MySQL, maskDSN(dsns[name]))
	}

	srv.Mongo, srv.MongoDatabase = opts.MongoURI, opts.Namespace+suite.Shipping
	if srv.Mongo == "" {
		dir, err := os.MkdirTemp("", "sagasuite-dev-ferretdb-")
		if err != nil {
			return st, err
		}
		st.stops = append(st.stops, func() error { return os.RemoveAll(dir) })
		uri, stop, err := startMongo(opts.MongoAddr, dir)
		if err != nil {
			return st, err
		}
		st.stops = append(st.stops, stop)
		srv.Mongo, srv.MongoInProcess, srv.MongoDir = uri, true, dir
	}
	if err := st.startGateway(ctx, opts); err != nil {
		return st, err
	}
	srv.Cassandra = strings.Join(opts.Cassandra, ",")
	srv.NotificationInMemory = len(opts.Cassandra) == 0
	if !srv.NotificationInMemory {
		srv.CassandraKeyspace = opts.Namespace + suite.Notification
	}

	// One telemetry setup for the five services, one registry all ops
	// servers serve; each service's spans carry its own service.name, and
	// console exporters (OTEL_TRACES_EXPORTER=console) write to the log
	// output, never to stdout.
	logger := logging.New(opts.LogOutput, opts.LogLevel, string(config.FormatText))
	registry := prometheus.NewRegistry()
	shutdownTelemetry, err := telemetry.Setup(ctx, telemetry.Options{
		ServiceName: "sagasuite-dev", Services: suite.Services, ConsoleOutput: opts.LogOutput,
		Registry: registry, Logger: logger,
	})
	if err != nil {
		return st, fmt.Errorf("telemetry: %w", err)
	}
	st.stops = append(st.stops, func() error {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return shutdownTelemetry(flushCtx)
	})

	// Services.
	svcCtx, svcCancel := context.WithCancel(context.Background())
	st.svcCancel = svcCancel
	kafka := service.KafkaConfig{Brokers: opts.Kafka, TopicPrefix: srv.TopicPrefix, Partitions: 3, ReplicationFactor: 1}
	common := func(name string) config.Common {
		grpcAddr, opsAddr, webAddr := opts.GRPC.Of(name), opts.Ops.Of(name), opts.Web.Of(name)
		if a := st.GRPC.Of(name); a != "" { // a restart keeps the port clients know
			grpcAddr, opsAddr, webAddr = a, st.Ops.Of(name), st.Web.Of(name)
		}
		// Reflection on: grpcurl without proto files is the dev stack's way in.
		// Tokens are checked against the stack's own key, as the binaries'
		// <P>_AUTH_* settings would.
		return config.Common{ServiceName: name, GRPCAddr: grpcAddr, OpsAddr: opsAddr, GRPCReflection: true,
			WebAddr: webAddr, WebAllowedOrigins: opts.WebOrigins,
			Auth:     config.AuthConfig{JWKSFile: st.auth.jwksFile, Issuer: st.auth.issuer, Audience: st.auth.audience},
			LogLevel: opts.LogLevel, LogFormat: config.FormatText, ShutdownTimeout: 10 * time.Second}
	}
	runs := map[string]func(context.Context, service.Runtime) error{
		suite.Order: func(ctx context.Context, rt service.Runtime) error {
			cfg := order.Config{Common: common(suite.Order), KafkaConfig: kafka, MySQLDSN: dsns[suite.Order], MySQLMaxOpenConns: maxConns,
				Deadline: 30 * time.Second, DeadlineScanInterval: 250 * time.Millisecond, WatchPollInterval: 5 * time.Second,
				MaxPendingOrders: 200, PendingCountInterval: 500 * time.Millisecond, OverloadRetryAfter: time.Second}
			if opts.DeadlineScanInterval > 0 {
				cfg.DeadlineScanInterval = opts.DeadlineScanInterval
			}
			st.mu.Lock()
			if st.orderDeadline > 0 {
				cfg.Deadline = st.orderDeadline
			}
			st.mu.Unlock()
			return order.Run(ctx, cfg, rt)
		},
		suite.Inventory: func(ctx context.Context, rt service.Runtime) error {
			return inventory.Run(ctx, inventory.Config{Common: common(suite.Inventory), KafkaConfig: kafka,
				MySQLDSN: dsns[suite.Inventory], MySQLMaxOpenConns: maxConns}, rt)
		},
		suite.Payment: func(ctx context.Context, rt service.Runtime) error {
			return payment.Run(ctx, payment.Config{Common: common(suite.Payment), KafkaConfig: kafka,
				MySQLDSN: dsns[suite.Payment], MySQLMaxOpenConns: maxConns, GatewayURL: st.GatewayURL}, rt)
		},
		suite.Shipping: func(ctx context.Context, rt service.Runtime) error {
			return shipping.Run(ctx, shipping.Config{Common: common(suite.Shipping), KafkaConfig: kafka,
				MongoURI: srv.Mongo, MongoDatabase: srv.MongoDatabase}, rt)
		},
		suite.Notification: func(ctx context.Context, rt service.Runtime) error {
			cfg := notification.Config{Common: common(suite.Notification), KafkaConfig: kafka,
				CassandraHosts: opts.Cassandra, CassandraKeyspace: srv.CassandraKeyspace,
				CassandraReplication: "{'class':'SimpleStrategy','replication_factor':1}",
				CassandraConsistency: "LOCAL_QUORUM", CassandraTimeout: 10 * time.Second}
			if srv.NotificationInMemory {
				return notification.RunInMemory(ctx, cfg, rt)
			}
			return notification.Run(ctx, cfg, rt)
		},
	}
	st.svcCtx, st.runs, st.listen, st.procs = svcCtx, runs, make(chan listening, 1), map[string]*proc{}
	st.WebOrigins = opts.WebOrigins
	st.newRT = func(name string) service.Runtime {
		var web net.Addr // told just before OnListening, by the same goroutine
		return service.Runtime{Logger: logger.With("service", name), SharedTelemetry: true, Registry: registry, Clock: opts.Clock,
			OnWebListening: func(w net.Addr) { web = w },
			OnListening:    func(g, o net.Addr) { st.listen <- listening{name, g, o, web} }}
	}
	// One service at a time: release its reserved ports, run it, wait until
	// it listens (see reservePorts).
	for _, name := range opts.Services {
		if runs[name] == nil {
			return st, fmt.Errorf("devstack: unknown service %q (want one of %s)", name, strings.Join(suite.Services, ", "))
		}
	}
	for _, name := range opts.Services {
		st.release(name)
		st.svcNames = append(st.svcNames, name)
		if err := st.run(ctx, name, opts.ReadyTimeout); err != nil {
			return st, err
		}
	}

	// Wait until all are ready (consumers in their groups, stores up).
	if err := st.awaitReady(ctx, opts.Services...); err != nil {
		return st, err
	}
	if slices.Contains(opts.Services, suite.Inventory) {
		st.Catalog = opts.Catalog
		if err := seed(ctx, st.GRPC.Inventory, opts.Catalog, st.ToolToken("sagactl-dev-seed")); err != nil {
			return st, err
		}
	}
	if opts.Console != "" {
		if err := st.startConsole(ctx, opts); err != nil {
			return st, err
		}
	}
	if opts.StateFile != "" {
		if err := st.writeStateFile(opts.StateFile); err != nil {
			return st, err
		}
	}
	st.ReadyIn = time.Since(began)
	return st, nil
}

func (o Options) withDefaults() Options {
	for _, name := range suite.Services {
		if o.GRPC.Of(name) == "" {
			o.GRPC.Set(name, DefaultGRPC.Of(name))
		}
		if o.Ops.Of(name) == "" {
			o.Ops.Set(name, DefaultOps.Of(name))
		}
		if o.Web.Of(name) == "" {
			o.Web.Set(name, DefaultWeb.Of(name))
			if host, port, err := net.SplitHostPort(o.GRPC.Of(name)); err == nil && port == "0" {
				o.Web.Set(name, net.JoinHostPort(host, "0"))
			}
		}
	}
	if o.KafkaAddr == "" {
		o.KafkaAddr = DefaultKafkaAddr
	}
	if o.MySQLAddr == "" {
		o.MySQLAddr = DefaultMySQLAddr
	}
	if o.MongoAddr == "" {
		o.MongoAddr = DefaultMongoAddr
	}
	if o.GatewayAddr == "" {
		o.GatewayAddr = DefaultGatewayAddr
	}
	if o.Namespace == "" {
		o.Namespace = Namespace
	}
	if o.Catalog == nil {
		o.Catalog = DefaultCatalog
	}
	if o.Services == nil {
		o.Services = suite.Services
	}
	if o.LogLevel == "" {
		o.LogLevel = config.LevelInfo
	}
	if o.LogOutput == nil {
		o.LogOutput = os.Stderr
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
	if o.WebOrigins == nil {
		o.WebOrigins = consoleOrigins(o.Console)
	}
	return o
}

// reservePorts listens on every fixed service address before the stack
// makes any outgoing connection. The services' documented ports
// (50051–50055, 8081–8085) lie in Linux's ephemeral range, from which the
// kernel gives client sockets their local port, skipping bound ones: while
// five services started, one's Kafka or store connection took another's
// gRPC port now and then ("bind: address already in use"). So each service's
// ports stay held until just before it starts.
//
// A port may also be held by another process's client connection, closing
// or in TIME_WAIT (seen here with tests running against the local real
// stack); then it is free again within a minute, and reservePorts waits for
// it, saying so. A port some server listens on is an error at once.
func (s *Stack) reservePorts(ctx context.Context, opts Options) error {
	s.reserved = map[string][]net.Listener{}
	for _, name := range suite.Services {
		for _, a := range []struct{ addr, flag string }{{opts.GRPC.Of(name), name}, {opts.Ops.Of(name), name + "-ops"}} {
			if _, port, err := net.SplitHostPort(a.addr); err != nil || port == "0" {
				continue // bad addresses are reported by the service; port 0 needs no reservation
			}
			ln, err := listenWhenFree(ctx, a.addr, opts.LogOutput)
			if err != nil {
				return fmt.Errorf("%s address %s: %w (choose another with --%s)", name, a.addr, err, a.flag)
			}
			s.reserved[name] = append(s.reserved[name], ln)
		}
	}
	return nil
}

// listenWhenFree listens on addr, waiting up to 65s (TIME_WAIT lasts 60s)
// while the port is held by a connection rather than by a listener.
func listenWhenFree(ctx context.Context, addr string, log io.Writer) (net.Listener, error) {
	ctx, cancel := context.WithTimeout(ctx, 65*time.Second)
	defer cancel()
	said := false
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		if c, dialErr := net.DialTimeout("tcp", addr, time.Second); dialErr == nil {
			self := c.LocalAddr().String() == c.RemoteAddr().String()
			c.Close()
			if !self {
				return nil, errors.New("another server listens there (another `sagactl dev`?)")
			}
		}
		if !said {
			fmt.Fprintf(log, "sagactl dev: port %s is held by a closing connection of another program (it lies in the kernel's ephemeral port range); waiting for it, at most a minute\n", addr)
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("still in use after waiting: %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// startGateway serves the simulated payment gateway over HTTP in this
// process, with its own ledger file: payment (restarted or not) reaches it by
// URL, as replicas reach a real processor, and the audit reads its ledger.
func (s *Stack) startGateway(ctx context.Context, opts Options) error {
	srv := &s.Servers
	srv.GatewayLedger = opts.GatewayLedger
	if srv.GatewayLedger == "" && srv.MySQLInProcess {
		dir, err := os.MkdirTemp("", "sagasuite-dev-gateway-")
		if err != nil {
			return err
		}
		s.stops = append(s.stops, func() error { return os.RemoveAll(dir) })
		srv.GatewayLedger, srv.GatewayLedgerTemp = filepath.Join(dir, "ledger.jsonl"), true
	} else if srv.GatewayLedger == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("gateway ledger: %w (choose a file with --gateway-ledger)", err)
		}
		if err := os.MkdirAll(filepath.Join(cache, "sagasuite"), 0o700); err != nil {
			return fmt.Errorf("gateway ledger: %w", err)
		}
		srv.GatewayLedger = filepath.Join(cache, "sagasuite", "dev-gateway-ledger.jsonl")
	}
	var ln net.Listener
	var err error
	if _, port, perr := net.SplitHostPort(opts.GatewayAddr); perr == nil && port == "0" {
		ln, err = net.Listen("tcp", opts.GatewayAddr)
	} else {
		ln, err = listenWhenFree(ctx, opts.GatewayAddr, opts.LogOutput)
	}
	if err != nil {
		return fmt.Errorf("payment gateway address %s: %w (choose another with --gateway-listen)", opts.GatewayAddr, err)
	}
	s.GatewayURL = "http://" + ln.Addr().String()
	gwCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- payment.ServeGateway(gwCtx, ln, payment.GatewayConfig{LedgerPath: srv.GatewayLedger}) }()
	s.stops = append(s.stops, func() error {
		stop()
		return <-done
	})
	return nil
}

// release closes the named service's reserved listeners.
func (s *Stack) release(name string) {
	for _, ln := range s.reserved[name] {
		ln.Close()
	}
	delete(s.reserved, name)
}

// fail records the first failure of a running part and closes Failed.
func (s *Stack) fail(err error) {
	s.failOnce.Do(func() {
		s.failErr = err
		close(s.failed)
	})
}

// Failed is closed when a service ends by itself (a part failed); Err then
// says why. sagactl dev stops the stack and exits when it happens.
func (s *Stack) Failed() <-chan struct{} { return s.failed }

// Err is the failure that closed Failed, or nil.
func (s *Stack) Err() error {
	select {
	case <-s.failed:
		return s.failErr
	default:
		return nil
	}
}

// awaitReady polls the named services' /readyz until each answers 200.
func (s *Stack) awaitReady(ctx context.Context, names ...string) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, name := range names {
		url := "http://" + s.Ops.Of(name) + "/readyz"
		for {
			resp, err := client.Get(url)
			if err == nil {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
			}
			select {
			case <-s.failed:
				return s.failErr
			case <-ctx.Done():
				return fmt.Errorf("%s not ready (%s): %v: %w", name, url, err, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// Stop stops the services (gracefully, each bounded by its shutdown
// timeout), then the servers and telemetry, and removes the temporary
// files. It returns when every goroutine and listener Start made is gone.
// Later calls return the first call's result.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		if s.svcCancel != nil {
			s.svcCancel()
		}
		for _, name := range s.svcNames {
			s.mu.Lock()
			p := s.procs[name]
			s.mu.Unlock()
			if p == nil {
				continue
			}
			select {
			case err := <-p.done:
				p.done <- err // a later StopService or Stop sees it too
				if err != nil && !errors.Is(err, context.Canceled) {
					errs = append(errs, fmt.Errorf("%s: %w", name, err))
				}
			case <-time.After(30 * time.Second):
				errs = append(errs, fmt.Errorf("%s did not stop within 30s", name))
			}
		}
		for _, name := range suite.Services {
			s.release(name)
		}
		for i := len(s.stops) - 1; i >= 0; i-- {
			if err := s.stops[i](); err != nil {
				errs = append(errs, err)
			}
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// run starts one service in its own context and waits until it listens.
func (s *Stack) run(ctx context.Context, name string, bound time.Duration) error {
	pctx, cancel := context.WithCancel(s.svcCtx)
	p := &proc{cancel: cancel, done: make(chan error, 1)}
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	run, rt := s.runs[name], s.newRT(name)
	go func() {
		err := run(pctx, rt)
		if pctx.Err() == nil { // ended by itself: the stack is broken
			if err == nil {
				err = errors.New("stopped unexpectedly")
			}
			s.fail(fmt.Errorf("%s: %w", name, err))
		}
		p.done <- err
	}()
	select {
	case l := <-s.listen:
		s.GRPC.Set(l.name, l.grpc.String())
		s.Ops.Set(l.name, l.opsA.String())
		if l.web != nil {
			s.Web.Set(l.name, l.web.String())
		}
		return nil
	case <-s.failed:
		return s.failErr
	case <-ctx.Done():
		return fmt.Errorf("%s did not listen within %s: %w", name, bound, ctx.Err())
	}
}

// StopService stops one running service gracefully (the demo stalls a saga
// with it); StartService runs it again on the same addresses. Both return
// once the service is down, or listening and ready.
func (s *Stack) StopService(ctx context.Context, name string) error {
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("devstack: no service %q", name)
	}
	p.cancel()
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s did not stop: %w", name, ctx.Err())
	}
}

// StartService starts a service StopService stopped; see StopService.
func (s *Stack) StartService(ctx context.Context, name string) error {
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("devstack: no service %q", name)
	}
	select {
	case <-p.done:
	default:
		return fmt.Errorf("devstack: %s is running", name)
	}
	if err := s.run(ctx, name, 0); err != nil {
		return err
	}
	// This service only: another may be stopped on purpose (the demo
	// restarts order while payment is down).
	return s.awaitReady(ctx, name)
}

// ensureDatabases creates namespace+name on the server of dsn for each name
// and returns each one's DSN.
func ensureDatabases(ctx context.Context, dsn, namespace string, names ...string) (map[string]string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	cfg.DBName = ""
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxOpenConns(1)
	out := make(map[string]string, len(names))
	for _, name := range names {
		dbName := namespace + name
		if err := retry(ctx, func() error {
			_, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+dbName+"`")
			return err
		}); err != nil {
			return nil, fmt.Errorf("create database %s on %s: %w", dbName, cfg.Addr, err)
		}
		c := cfg.Clone()
		c.DBName = dbName
		out[name] = c.FormatDSN()
	}
	return out, nil
}

// retry runs f until it succeeds, for at most 15s (a server may still be starting).
func retry(ctx context.Context, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// maskDSN hides the password of a DSN.
func maskDSN(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	if cfg.Passwd != "" {
		cfg.Passwd = "****"
	}
	return cfg.FormatDSN()
}

// offsetPort returns addr with its port increased by i (port 0 stays 0).
func offsetPort(addr string, i int) (string, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port+i > 65535 {
		return "", fmt.Errorf("%s: bad port", addr)
	}
	if port == 0 {
		return addr, nil
	}
	return net.JoinHostPort(host, strconv.Itoa(port+i)), nil
}

// Control is the stack seen as a way to stop and start one service (what
// the demo needs to stall a saga deterministically).
type Control struct{ s *Stack }

// Control returns the stack's Control.
func (s *Stack) Control() Control { return Control{s} }

// Stop stops one service; see StopService.
func (c Control) Stop(ctx context.Context, name string) error { return c.s.StopService(ctx, name) }

// Start starts it again; see StartService.
func (c Control) Start(ctx context.Context, name string) error { return c.s.StartService(ctx, name) }

// SetOrderDeadline restarts the order service with deadline d for the
// orders it creates from then on; see Stack.SetOrderDeadline.
func (c Control) SetOrderDeadline(ctx context.Context, d time.Duration) error {
	return c.s.SetOrderDeadline(ctx, d)
}

// SetOrderDeadline restarts the order service (same addresses) so that the
// orders it creates from now on get deadline d; orders created before keep
// theirs. It returns once the service is ready again.
func (s *Stack) SetOrderDeadline(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("devstack: order deadline must be positive, got %s", d)
	}
	if err := s.StopService(ctx, suite.Order); err != nil {
		return err
	}
	s.mu.Lock()
	s.orderDeadline = d
	s.mu.Unlock()
	return s.StartService(ctx, suite.Order)
}
