// Package privinfra runs private instances of the local real stack's servers
// for tests that kill -9 and restart a server while the shared stack keeps
// serving everyone else. It drives deploy/local/infra.sh with INFRA_INSTANCE
// (its own data, logs and pid files under $SAGASUITE_HOME/instances/NAME)
// and INFRA_*_PORT overrides (free loopback ports below 32768).
//
//	inst := privinfra.New(t, "mariadb")
//	if err := inst.Up(ctx, "mariadb"); err != nil { t.Fatal(err) }
//	inst.Kill(ctx, "mariadb") … inst.Up(ctx, "mariadb") // same data
//
// The test's cleanup stops the instance and deletes its directory, also when
// the test failed. An instance whose test process died without cleaning up
// (a panic, kill -9) is stopped and deleted by the next New.
package privinfra

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/testenv"
)

// Components infra.sh knows.
const (
	Kafka     = "kafka"
	MariaDB   = "mariadb"
	Postgres  = "postgres"
	FerretDB  = "ferretdb"
	Cassandra = "cassandra"
)

var components = []string{Kafka, MariaDB, Postgres, FerretDB, Cassandra}

// portVars are the infra.sh port settings each component needs.
var portVars = map[string][]string{
	Kafka:     {"INFRA_KAFKA_PORT", "INFRA_KAFKA_CONTROLLER_PORT"},
	MariaDB:   {"INFRA_MARIADB_PORT"},
	Postgres:  {"INFRA_POSTGRES_PORT"},
	FerretDB:  {"INFRA_FERRETDB_PORT"},
	Cassandra: {"INFRA_CASSANDRA_CQL_PORT", "INFRA_CASSANDRA_STORAGE_PORT", "INFRA_CASSANDRA_SSL_STORAGE_PORT", "INFRA_CASSANDRA_JMX_PORT"},
}

// Ports come from [portMin, portMax): below Linux's ephemeral range and the
// end-to-end stacks' service ports (20000 and up), away from the shared
// stack's own ports, which free() finds taken anyway.
const (
	portMin = 10000
	portMax = 20000
)

// sharedPorts are the default instance's (deploy/local/infra.sh), never
// handed out even while the shared stack is down.
var sharedPorts = []int{19092, 19093, 13306, 15432, 17017, 19042, 17000, 17001, 17199}

// host is where every server listens.
const host = "127.0.0.1"

// Instance is one private set of servers. Its methods are not safe for
// concurrent use.
type Instance struct {
	t      testing.TB
	name   string
	script string
	dir    string
	env    []string // INFRA_INSTANCE and the port settings
	ports  map[string]int
}

// New prepares a private instance able to run the given components (their
// ports are picked now) and registers the cleanup that stops it and deletes
// its data. It starts nothing: call Up.
func New(t testing.TB, comps ...string) *Instance {
	t.Helper()
	if len(comps) == 0 {
		t.Fatal("privinfra: name the components the instance runs")
	}
	for _, c := range comps {
		if !slices.Contains(components, c) {
			t.Fatalf("privinfra: unknown component %q (want one of %v)", c, components)
		}
	}
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	home := sagasuiteHome()
	sweep(t, script, filepath.Join(home, "instances"))

	name := strings.ReplaceAll(testenv.UniqueName("t-"), "_", "-")
	inst := &Instance{t: t, name: name, script: script, dir: filepath.Join(home, "instances", name), ports: map[string]int{}}
	var vars []string
	for _, c := range comps {
		vars = append(vars, portVars[c]...)
	}
	picked, err := freePorts(len(vars))
	if err != nil {
		t.Fatalf("privinfra: %v", err)
	}
	inst.env = []string{"INFRA_INSTANCE=" + name}
	for i, v := range vars {
		inst.ports[v] = picked[i]
		inst.env = append(inst.env, fmt.Sprintf("%s=%d", v, picked[i]))
	}
	// Written before anything starts, so that a sweep can stop what this
	// instance left running if the test process dies.
	if err := os.MkdirAll(inst.dir, 0o755); err != nil {
		t.Fatalf("privinfra: %v", err)
	}
	owner := append([]string{"OWNER_PID=" + strconv.Itoa(os.Getpid())}, inst.env...)
	if err := os.WriteFile(filepath.Join(inst.dir, ownerFile), []byte(strings.Join(owner, "\n")+"\n"), 0o644); err != nil {
		t.Fatalf("privinfra: %v", err)
	}
	t.Cleanup(inst.cleanup)
	return inst
}

// ownerFile in an instance directory names the test process that owns it
// and the instance's settings.
const ownerFile = "instance.env"

// Name is the instance's INFRA_INSTANCE.
func (i *Instance) Name() string { return i.name }

// Dir holds the instance's data, logs and pid files, one directory per component.
func (i *Instance) Dir() string { return i.dir }

// LogPath is the named component's server log.
func (i *Instance) LogPath(comp string) string { return filepath.Join(i.dir, comp, comp+".log") }

func (i *Instance) addr(v string) string {
	p, ok := i.ports[v]
	if !ok {
		i.t.Fatalf("privinfra: instance %s was not made for the component of %s", i.name, v)
	}
	return net.JoinHostPort(host, strconv.Itoa(p))
}

// KafkaBrokers is the private Kafka's bootstrap address.
func (i *Instance) KafkaBrokers() string { return i.addr("INFRA_KAFKA_PORT") }

// MySQLAdminDSN is an admin DSN of the private MariaDB (infra.sh's user).
func (i *Instance) MySQLAdminDSN() string {
	return "sagasuite:sagasuite@tcp(" + i.addr("INFRA_MARIADB_PORT") + ")/"
}

// MongoURI is the private FerretDB's URI.
func (i *Instance) MongoURI() string { return "mongodb://" + i.addr("INFRA_FERRETDB_PORT") + "/" }

// CassandraHosts is the private Cassandra's CQL address.
func (i *Instance) CassandraHosts() string { return i.addr("INFRA_CASSANDRA_CQL_PORT") }

// Set adds an infra.sh setting (e.g. INFRA_CASSANDRA_COMMITLOG_SYNC=group)
// for the commands that follow; set it before the Up that starts the server.
func (i *Instance) Set(key, value string) {
	if !strings.HasPrefix(key, "INFRA_") || strings.HasPrefix(key, "INFRA_INSTANCE") || strings.HasSuffix(key, "_PORT") {
		i.t.Fatalf("privinfra: Set(%q): want an INFRA_ setting other than the instance name and ports, which New picks", key)
	}
	i.env = append(i.env, key+"="+value)
}

// Up starts the components that are not running (on the data they left)
// and returns when each is ready, as `infra.sh up` decides it.
func (i *Instance) Up(ctx context.Context, comps ...string) error {
	return i.run(ctx, append([]string{"up"}, comps...)...)
}

// Kill sends SIGKILL to the components' servers (process groups) and
// returns when they are gone.
func (i *Instance) Kill(ctx context.Context, comps ...string) error {
	return i.run(ctx, append([]string{"kill"}, comps...)...)
}

// Down stops every component of the instance (SIGTERM, then SIGKILL).
func (i *Instance) Down(ctx context.Context) error { return i.run(ctx, "down") }

func (i *Instance) run(ctx context.Context, args ...string) error {
	out, err := runScript(ctx, i.script, i.env, args...)
	if err != nil {
		return fmt.Errorf("privinfra %s: infra.sh %s: %w\n%s", i.name, strings.Join(args, " "), err, out)
	}
	i.t.Logf("privinfra %s: infra.sh %s:\n%s", i.name, strings.Join(args, " "), strings.TrimRight(out, "\n"))
	return nil
}

func (i *Instance) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := i.Down(ctx); err != nil {
		i.t.Errorf("privinfra: stop instance %s: %v (its directory %s is kept)", i.name, err, i.dir)
		return
	}
	if err := os.RemoveAll(i.dir); err != nil {
		i.t.Errorf("privinfra: remove %s: %v", i.dir, err)
	}
}

func runScript(ctx context.Context, script string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second // servers never hold its pipes (infra.sh logs them to files), but bound it
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// sweep stops and deletes instances whose owning test process is gone.
func sweep(t testing.TB, script, root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return // no instances yet
	}
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		env, owner, ok := readOwner(filepath.Join(dir, ownerFile))
		if !ok || processExists(owner) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		out, err := runScript(ctx, script, env, "down")
		cancel()
		if err != nil {
			t.Logf("privinfra: could not stop abandoned instance %s (owner pid %d gone): %v\n%s", e.Name(), owner, err, out)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("privinfra: remove abandoned instance %s: %v", dir, err)
			continue
		}
		t.Logf("privinfra: stopped and removed abandoned instance %s (owner pid %d gone)", e.Name(), owner)
	}
}

// readOwner parses an instance.env: the INFRA_* settings and the owner pid.
func readOwner(path string) (env []string, owner int, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, found := strings.Cut(sc.Text(), "=")
		switch {
		case !found:
		case k == "OWNER_PID":
			owner, _ = strconv.Atoi(v)
		case strings.HasPrefix(k, "INFRA_"):
			env = append(env, k+"="+v)
		}
	}
	return env, owner, owner > 0 && len(env) > 0
}

func processExists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

func sagasuiteHome() string {
	if h := os.Getenv("SAGASUITE_HOME"); h != "" {
		return h
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "sagasuite")
}

// findScript walks up from the working directory to deploy/local/infra.sh.
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("privinfra: %w", err)
	}
	for {
		p := filepath.Join(dir, "deploy", "local", "infra.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("privinfra: no deploy/local/infra.sh in the working directory or above; run inside the repository")
		}
		dir = parent
	}
}

// freePorts returns n distinct loopback ports in [portMin, portMax) that
// nothing listened on when probed.
func freePorts(n int) ([]int, error) {
	var ports []int
	const tries = 2000
	for i := 0; i < tries && len(ports) < n; i++ {
		p := portMin + rand.IntN(portMax-portMin)
		if slices.Contains(ports, p) || slices.Contains(sharedPorts, p) || !free(p) {
			continue
		}
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("found only %d of %d free ports in [%d, %d)", len(ports), n, portMin, portMax)
	}
	return ports, nil
}

func free(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
