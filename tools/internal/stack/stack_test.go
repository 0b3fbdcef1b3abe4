package stack

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

func TestPortsStayBelowTheEphemeralRange(t *testing.T) {
	var all []int
	for range 20 {
		ports, err := reservePorts(10)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ports...)
	}
	defer releasePorts(all)
	seen := map[int]bool{}
	for _, p := range all {
		if p < portMin || p >= portMax || p >= 32768 {
			t.Errorf("port %d outside [%d, %d)", p, portMin, portMax)
		}
		if seen[p] {
			t.Errorf("port %d handed out twice", p)
		}
		seen[p] = true
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if free(ln.Addr().(*net.TCPAddr).Port) {
		t.Errorf("free(%d) = true for a port with a listener", ln.Addr().(*net.TCPAddr).Port)
	}
}

func TestBuildReportsTheCompileError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a bound for a hang
	defer cancel()
	err := build(ctx, t.TempDir(), map[string]string{"broken": modulePrefix + "tools/internal/stack/testdata/broken"})
	if err == nil {
		t.Fatal("build of a package that does not compile succeeded")
	}
	for _, want := range []string{"build broken:", "testdata/broken/main.go:6:2: undefined: notDefinedAnywhere"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

var (
	fakeOnce sync.Once
	fakeDir  string
	fakeErr  error
)

// fakeBinaries builds testdata/fakesvc once and links it under every
// service's name, so the process control is tested without the services.
func fakeBinaries(t *testing.T) string {
	t.Helper()
	fakeOnce.Do(func() {
		fakeDir, fakeErr = os.MkdirTemp("", "stack-fakesvc-")
		if fakeErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a bound for a hang
		defer cancel()
		if fakeErr = build(ctx, fakeDir, map[string]string{"fakesvc": modulePrefix + "tools/internal/stack/testdata/fakesvc"}); fakeErr != nil {
			return
		}
		for _, name := range suite.Services {
			if fakeErr = os.Link(filepath.Join(fakeDir, "fakesvc"), filepath.Join(fakeDir, name)); fakeErr != nil {
				return
			}
		}
	})
	if fakeErr != nil {
		t.Fatalf("fake service binaries: %v", fakeErr)
	}
	return fakeDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fakeDir != "" {
		os.RemoveAll(fakeDir)
	}
	os.Exit(code)
}

// recorder is a testing.TB whose cleanups and errors the test runs and
// inspects itself, to test what the stack's cleanup does and reports.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	errs     []string
}

func (r *recorder) Cleanup(f func()) { r.mu.Lock(); r.cleanups = append(r.cleanups, f); r.mu.Unlock() }
func (r *recorder) Error(args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprint(args...))
	r.mu.Unlock()
}
func (r *recorder) Errorf(format string, args ...any) { r.Error(fmt.Sprintf(format, args...)) }
func (r *recorder) Failed() bool                      { r.mu.Lock(); defer r.mu.Unlock(); return len(r.errs) > 0 }

// runCleanups runs the recorded cleanups, last first (as testing does).
func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}

// lastEnv returns the environment the fake service logged on its last start.
func lastEnv(t *testing.T, s *Stack, name string) map[string]string {
	t.Helper()
	return lastEnvFile(t, s.LogPath(name))
}

// lastEnvFile returns the environment the fake service logged last in the log file.
func lastEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var env map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Msg string            `json:"msg"`
			Env map[string]string `json:"env"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "fake service env" {
			env = line.Env
		}
	}
	if env == nil {
		t.Fatalf("%s holds no environment:\n%s", path, logTail(path, 20))
	}
	return env
}

func TestProcessControl(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a bound for a hang
	defer cancel()
	s := New(t, Options{BinDir: fakeBinaries(t), Env: map[string]map[string]string{suite.Order: {"ORDER_DEADLINE": "30s"}}})
	started := time.Now()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("five fake services provisioned and ready in %s", time.Since(started).Round(time.Millisecond))

	env := lastEnv(t, s, suite.Order)
	for k, want := range map[string]string{
		"ORDER_GRPC_ADDR": s.GRPCAddr(suite.Order), "ORDER_OPS_ADDR": s.OpsAddr(suite.Order),
		"ORDER_MYSQL_DSN": s.MySQLDSN(suite.Order), "ORDER_KAFKA_TOPIC_PREFIX": s.TopicPrefix(),
		"ORDER_KAFKA_BROKERS": testenv.KafkaBrokers(), "ORDER_LOG_FORMAT": "json", "ORDER_DEADLINE": "30s",
	} {
		if env[k] != want {
			t.Errorf("order's %s = %q, want %q", k, env[k], want)
		}
	}
	if env := lastEnv(t, s, suite.Payment); env["PAYMENT_GATEWAY_URL"] != s.GatewayURL() || s.GatewayURL() == "" {
		t.Errorf("payment's PAYMENT_GATEWAY_URL = %q, want the stack's gateway %q", env["PAYMENT_GATEWAY_URL"], s.GatewayURL())
	}
	if resp, err := http.Get(s.GatewayURL() + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the stack's payment gateway does not answer: %v", err)
	} else {
		resp.Body.Close()
	}
	// Each service is told to verify the stack's own key's tokens.
	for _, name := range suite.Services {
		env, p := lastEnv(t, s, name), strings.ToUpper(name)+"_AUTH_"
		v, err := auth.NewVerifier(ctx, auth.VerifierConfig{JWKSFile: env[p+"JWKS_FILE"], Issuer: env[p+"ISSUER"], Audience: env[p+"AUDIENCE"]})
		if err != nil {
			t.Fatalf("%s's %s* settings: %v", name, p, err)
		}
		token, err := s.Keys().Service("stack-test").Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := v.Verify(ctx, token); err != nil || got.Subject != "stack-test" {
			t.Errorf("%s would refuse the stack's service token: %+v, %v", name, got, err)
		}
	}
	if env := lastEnv(t, s, suite.Shipping); env["SHIPPING_MONGO_DATABASE"] != s.MongoDatabase() || env["SHIPPING_MONGO_URI"] != testenv.MongoURI() {
		t.Errorf("shipping env %v lacks its Mongo settings", env)
	}
	if env := lastEnv(t, s, suite.Notification); env["NOTIFICATION_CASSANDRA_KEYSPACE"] != s.Keyspace() {
		t.Errorf("notification env %v lacks its keyspace", env)
	}
	for _, name := range suite.Services {
		for _, addr := range []string{s.GRPCAddr(name), s.OpsAddr(name)} {
			_, portText, _ := net.SplitHostPort(addr)
			if port, err := strconv.Atoi(portText); err != nil || port < portMin || port >= 32768 {
				t.Errorf("%s listens on %s, outside [%d, 32768)", name, addr, portMin)
			}
		}
	}

	if err := s.Kill(suite.Payment); err != nil {
		t.Fatal(err)
	}
	if s.Running(suite.Payment) {
		t.Fatal("payment still running after Kill")
	}
	if err := s.Kill(suite.Payment); err == nil || !strings.Contains(err.Error(), "payment is not running") {
		t.Errorf("second Kill: %v, want 'not running'", err)
	}
	if err := s.StartService(ctx, suite.Payment); err != nil {
		t.Fatal(err)
	}
	if got := lastEnv(t, s, suite.Payment)["PAYMENT_GRPC_ADDR"]; got != s.GRPCAddr(suite.Payment) {
		t.Errorf("restarted payment on %s, want the same %s", got, s.GRPCAddr(suite.Payment))
	}
	if err := s.StartService(ctx, suite.Payment); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second StartService: %v, want 'already running'", err)
	}

	s.Env(suite.Order, "ORDER_DEADLINE", "2s")
	if err := s.Restart(ctx, suite.Order); err != nil {
		t.Fatal(err)
	}
	if got := lastEnv(t, s, suite.Order)["ORDER_DEADLINE"]; got != "2s" {
		t.Errorf("ORDER_DEADLINE after Env + Restart = %q, want 2s", got)
	}
	if err := s.Stop(suite.Inventory); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func TestStartFailuresNameTheServiceAndShowItsLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a bound for a hang
	defer cancel()
	// never-ready must run out of ReadyTimeout, after at least one 503 (5 s
	// leave a busy machine time to start the fake); exit-at-start ends by
	// the exit, so its bound only catches a hang.
	cases := []struct {
		mode  string
		ready time.Duration
		want  []string
	}{
		{"never-ready", 5 * time.Second, []string{"stack: order not ready within 5s at http://", "503 not ready: fake never gets ready", `"msg":"fake service env"`}},
		{"exit-at-start", 3 * time.Minute, []string{"stack: order exited before it was ready (exit status 3)", "fake: exiting at start as asked"}},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			s := New(t, Options{BinDir: fakeBinaries(t), Services: []string{suite.Order}, ReadyTimeout: tc.ready})
			s.Env(suite.Order, "ORDER_FAKE_MODE", tc.mode)
			err := s.Start(ctx)
			if err == nil {
				t.Fatal("Start succeeded")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			if tc.mode == "never-ready" {
				if err := s.Stop(suite.Order); err != nil {
					t.Errorf("Stop: %v", err)
				}
			}
		})
	}
}

func TestStopKillsAServiceThatIgnoresSIGTERM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a bound for a hang
	defer cancel()
	// The fake ignores SIGTERM, so it is killed when StopTimeout ends
	// whatever it is; 5 s give it time to log that it ignored the signal.
	s := New(t, Options{BinDir: fakeBinaries(t), Services: []string{suite.Shipping}, StopTimeout: 5 * time.Second})
	s.Env(suite.Shipping, "SHIPPING_FAKE_MODE", "ignore-term")
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err := s.Stop(suite.Shipping)
	if !errors.Is(err, errStopTimeout) || !strings.Contains(err.Error(), "fake: ignoring SIGTERM") {
		t.Fatalf("Stop = %v, want errStopTimeout with the log tail", err)
	}
	if s.Running(suite.Shipping) {
		t.Fatal("shipping still running")
	}
}

func TestCleanupReportsACrashedService(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a bound for a hang
	defer cancel()
	rec := &recorder{TB: t}
	s := New(rec, Options{BinDir: fakeBinaries(t), Services: []string{suite.Payment, suite.Shipping}})
	s.Env(suite.Payment, "PAYMENT_FAKE_MODE", "crash-after-ready")
	if err := s.Start(ctx); err != nil {
		rec.runCleanups()
		t.Fatal(err)
	}
	for s.Running(suite.Payment) {
		if ctx.Err() != nil {
			t.Fatal("payment never crashed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec.runCleanups()
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "stack: payment exited on its own during the test (exit status 2)") ||
		!strings.Contains(rec.errs[0], "fake: crashing as asked") {
		t.Fatalf("cleanup reported %q, want payment's crash with its log tail", rec.errs)
	}
	if s.Running(suite.Shipping) {
		t.Error("shipping still running after the cleanup")
	}
}

// TestProvisionAndCleanup checks on the real stack that each SQL service
// gets its own database and a user that reaches only it (and may take
// GET_LOCK), and that the cleanup drops the databases, users, Mongo
// database, keyspace, topics and consumer groups the services would create.
func TestProvisionAndCleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a bound for a hang
	defer cancel()
	rec := &recorder{TB: t}
	s := New(rec, Options{BinDir: fakeBinaries(t)})
	defer rec.runCleanups() // on an early failure; a no-op after the explicit run
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}

	// Each service's user: everything on its database, nothing elsewhere.
	for _, name := range mysqlServices {
		db := openMySQL(t, s.MySQLDSN(name))
		for _, stmt := range []string{
			"CREATE TABLE t (id BIGINT PRIMARY KEY)", "INSERT INTO t VALUES (1)", "ALTER TABLE t ADD COLUMN c INT",
			"CREATE INDEX t_c ON t (c)", "DELETE FROM t", "DROP TABLE t",
		} {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Errorf("%s's user: %s: %v", name, stmt, err)
			}
		}
		var got sql.NullInt64
		if err := db.QueryRowContext(ctx, "SELECT GET_LOCK(?, 1)", s.id+"-"+name).Scan(&got); err != nil || got.Int64 != 1 {
			t.Errorf("%s's user: GET_LOCK = %v, %v; want 1", name, got, err)
		}
		other := s.mysql[suite.Order].database
		if name == suite.Order {
			other = s.mysql[suite.Inventory].database
		}
		for _, stmt := range []string{
			"CREATE TABLE `" + other + "`.t (id INT)", "CREATE DATABASE `" + s.id + "_extra`", "SELECT COUNT(*) FROM mysql.user",
		} {
			_, err := db.ExecContext(ctx, stmt)
			var me *mysql.MySQLError
			if !errors.As(err, &me) || (me.Number != 1044 && me.Number != 1142) {
				t.Errorf("%s's user: %s: got %v, want access denied (1044/1142)", name, stmt, err)
			}
		}
		db.Close()
	}

	// What the services would create.
	session, err := cassandraSession(testenv.CassandraHosts())
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	if err := session.Query("CREATE KEYSPACE " + s.Keyspace() + " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}").ExecContext(ctx); err != nil {
		t.Fatalf("create keyspace: %v", err)
	}
	mongoClient, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI()).SetTimeout(30 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer mongoClient.Disconnect(context.Background()) //nolint:errcheck // test end
	if _, err := mongoClient.Database(s.MongoDatabase()).Collection("shipments").InsertOne(ctx, bson.D{{Key: "_id", Value: "o1"}}); err != nil {
		t.Fatalf("mongo insert: %v", err)
	}
	topic := s.TopicPrefix() + events.TopicOrders
	if err := bus.EnsureTopics(ctx, testenv.Brokers(), bus.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	joinGroup(ctx, t, topic, s.TopicPrefix()+suite.Order)

	rec.runCleanups()
	if len(rec.errs) > 0 {
		t.Fatalf("cleanup reported: %q", rec.errs)
	}

	admin, err := openAdmin(ctx, testenv.MySQLAdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	if err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE ?", s.id+"%").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d databases %s* left (%v)", n, s.id, err)
	}
	if err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE user LIKE ?", s.id+"%").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d users %s* left (%v)", n, s.id, err)
	}
	var ks []string
	iter := session.Query("SELECT keyspace_name FROM system_schema.keyspaces").IterContext(ctx)
	for name := ""; iter.Scan(&name); {
		ks = append(ks, name)
	}
	if err := iter.Close(); err != nil || slices.Contains(ks, s.Keyspace()) {
		t.Errorf("keyspace %s left (%v)", s.Keyspace(), err)
	}
	dbs, err := mongoClient.ListDatabaseNames(ctx, bson.D{})
	if err != nil || slices.Contains(dbs, s.MongoDatabase()) {
		t.Errorf("mongo database %s left (%v)", s.MongoDatabase(), err)
	}
	// Kafka deletes topics and groups asynchronously: wait, bounded.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		topics, groups := kafkaLeftovers(ctx, t, s.TopicPrefix())
		if len(topics) == 0 && len(groups) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 min after cleanup Kafka still has topics %v and groups %v", topics, groups)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func openMySQL(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // GET_LOCK is per connection
	return db
}

// joinGroup makes a consumer group commit an offset on topic, as a service's consumer does.
func joinGroup(ctx context.Context, t *testing.T, topic, group string) {
	t.Helper()
	leader, err := kafka.DialLeader(ctx, "tcp", testenv.Brokers()[0], topic, 0)
	if err != nil {
		t.Fatalf("dial leader of %s: %v", topic, err)
	}
	_, err = leader.WriteMessages(kafka.Message{Key: []byte("k"), Value: []byte("v")})
	leader.Close()
	if err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: testenv.Brokers(), GroupID: group, Topic: topic, MaxBytes: 1 << 20,
		StartOffset: kafka.FirstOffset, JoinGroupBackoff: 250 * time.Millisecond, MaxWait: 100 * time.Millisecond,
	})
	defer r.Close()
	readCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := r.ReadMessage(readCtx); err != nil { // commits the offset (GroupID set)
		t.Fatalf("group %s read %s: %v", group, topic, err)
	}
}

func kafkaLeftovers(ctx context.Context, t *testing.T, prefix string) (topics, groups []string) {
	t.Helper()
	conn, err := kafka.DialContext(ctx, "tcp", testenv.Brokers()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if strings.HasPrefix(p.Topic, prefix) && !slices.Contains(topics, p.Topic) {
			topics = append(topics, p.Topic)
		}
	}
	client := &kafka.Client{Addr: kafka.TCP(testenv.Brokers()...), Timeout: 10 * time.Second}
	listed, err := client.ListGroups(ctx, &kafka.ListGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range listed.Groups {
		if strings.HasPrefix(g.GroupID, prefix) {
			groups = append(groups, g.GroupID)
		}
	}
	return topics, groups
}
