package privinfra

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/testenv"
)

// script runs infra.sh with only the given INFRA_* settings (the test's own
// environment may carry some).
func script(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	path, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "INFRA_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return runScript(ctx, path, env, args...)
}

// The default instance's addresses are what libs/testenv defaults to,
// byte for byte as before private instances existed.
func TestDefaultEnvIsUnchanged(t *testing.T) {
	out, err := script(t, nil, "env")
	if err != nil {
		t.Fatalf("infra.sh env: %v\n%s", err, out)
	}
	want := "export SAGASUITE_KAFKA_BROKERS=" + testenv.DefaultKafkaBrokers + "\n" +
		"export SAGASUITE_MYSQL_ADMIN_DSN='" + testenv.DefaultMySQLAdminDSN + "'\n" +
		"export SAGASUITE_MONGO_URI=" + testenv.DefaultMongoURI + "\n" +
		"export SAGASUITE_CASSANDRA_HOSTS=" + testenv.DefaultCassandraHosts + "\n" +
		"export SAGASUITE_POSTGRES_URL='" + testenv.DefaultPostgresURL + "'\n"
	if out != want {
		t.Errorf("infra.sh env printed\n%s\nwant\n%s", out, want)
	}
}

func TestInstanceEnvUsesItsPorts(t *testing.T) {
	out, err := script(t, []string{"INFRA_INSTANCE=unit-env", "INFRA_KAFKA_PORT=12092", "INFRA_MARIADB_PORT=12306",
		"INFRA_FERRETDB_PORT=12017", "INFRA_CASSANDRA_CQL_PORT=12042", "INFRA_POSTGRES_PORT=12432"}, "env")
	if err != nil {
		t.Fatalf("infra.sh env: %v\n%s", err, out)
	}
	for _, want := range []string{"127.0.0.1:12092\n", "tcp(127.0.0.1:12306)/", "mongodb://127.0.0.1:12017/", "127.0.0.1:12042\n", "@127.0.0.1:12432/"} {
		if !strings.Contains(out, want) {
			t.Errorf("env of the instance lacks %q:\n%s", want, out)
		}
	}
}

func TestBadSettingsAreRefusedClearly(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"INFRA_INSTANCE=Bad Name"}, []string{"env"}, "INFRA_INSTANCE="},
		{[]string{"INFRA_INSTANCE=../up"}, []string{"status"}, "INFRA_INSTANCE="},
		{[]string{"INFRA_KAFKA_PORT=40000"}, []string{"env"}, "INFRA_KAFKA_PORT=40000: want a port number from 1 to 32767"},
		{[]string{"INFRA_MARIADB_PORT=x"}, []string{"env"}, "INFRA_MARIADB_PORT=x"},
		{[]string{"INFRA_INSTANCE=unit-bad"}, []string{"kill"}, "kill: name the components"},
		{[]string{"INFRA_INSTANCE=unit-bad"}, []string{"kill", "redis"}, "unknown component 'redis'"},
	} {
		out, err := script(t, tc.env, tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%v infra.sh %v: err %v, output %q; want a failure saying %q", tc.env, tc.args, err, out, tc.want)
		}
	}
	// The refused kills took the instance's lock: leave nothing behind.
	os.RemoveAll(filepath.Join(sagasuiteHome(), "instances", "unit-bad"))
}

func TestFreePortsAvoidTheSharedStack(t *testing.T) {
	ports, err := freePorts(50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p < portMin || p >= portMax || slices.Contains(sharedPorts, p) || seen[p] {
			t.Errorf("port %d: outside [%d, %d), a shared stack port, or handed out twice", p, portMin, portMax)
		}
		seen[p] = true
	}
}

func TestReadOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), ownerFile)
	if err := os.WriteFile(path, []byte("OWNER_PID=4242\nINFRA_INSTANCE=t-1\nINFRA_KAFKA_PORT=12000\njunk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env, owner, ok := readOwner(path)
	if !ok || owner != 4242 || !slices.Equal(env, []string{"INFRA_INSTANCE=t-1", "INFRA_KAFKA_PORT=12000"}) {
		t.Errorf("readOwner = %v, %d, %v", env, owner, ok)
	}
	if _, _, ok := readOwner(filepath.Join(t.TempDir(), "missing")); ok {
		t.Error("a missing file read as an owner")
	}
}
