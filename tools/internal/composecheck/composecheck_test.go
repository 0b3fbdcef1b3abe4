package composecheck

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/sagasuite/sagasuite/services/inventory"
	"github.com/sagasuite/sagasuite/services/notification"
	"github.com/sagasuite/sagasuite/services/order"
	"github.com/sagasuite/sagasuite/services/payment"
	"github.com/sagasuite/sagasuite/services/shipping"
	"github.com/sagasuite/sagasuite/tools/internal/console"
	"github.com/sagasuite/sagasuite/tools/internal/k8scheck"
	"github.com/sagasuite/sagasuite/tools/internal/promcheck"
)

var opts = Options{
	Services: []k8scheck.Service{
		{Name: order.Name, Prefix: "ORDER", Config: reflect.TypeFor[order.Config]()},
		{Name: inventory.Name, Prefix: "INVENTORY", Config: reflect.TypeFor[inventory.Config]()},
		{Name: payment.Name, Prefix: "PAYMENT", Config: reflect.TypeFor[payment.Config]()},
		{Name: shipping.Name, Prefix: "SHIPPING", Config: reflect.TypeFor[shipping.Config]()},
		{Name: notification.Name, Prefix: "NOTIFICATION", Config: reflect.TypeFor[notification.Config]()},
	},
	// The collector image holds only its binary: nothing to probe with (compose.yaml).
	NoHealthcheck: []string{"otel-collector"},
	NonRootUser:   "65532",
	Console: &k8scheck.Console{
		Service:   k8scheck.Service{Name: "console", Prefix: console.Prefix, Config: reflect.TypeFor[console.Config]()},
		Upstreams: console.Upstreams(),
	},
}

func composeDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy", "compose")
}

func composeFile(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(composeDir(t), "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func load(t *testing.T, content []byte, env map[string]string) (*types.Project, error) {
	t.Helper()
	return LoadContent(context.Background(), composeDir(t), "compose.yaml", content, env)
}

func TestComposeFilePassesEveryCheck(t *testing.T) {
	p, err := Load(context.Background(), filepath.Join(composeDir(t), "compose.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, problem := range append(Check(p, opts), CheckStores(p, opts)...) {
		t.Error(problem)
	}
	want := []string{"kafka", "mariadb", "postgres", "ferretdb", "cassandra", "mariadb-init", "postgres-init",
		"cassandra-init", "otel-collector", "prometheus", "order", "inventory", "payment", "shipping", "notification", "console"}
	if got := sortedNames(p.Services); len(got) != len(want) {
		t.Errorf("services %v, want %v", got, want)
	}
	for _, name := range want {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	// Interpolation ran: the default tag, and SAGASUITE_TAG when set.
	if img := p.Services["order"].Image; img != "sagasuite/order:0.1.0" {
		t.Errorf("order image %q, want the default tag sagasuite/order:0.1.0", img)
	}
	p, err = Load(context.Background(), filepath.Join(composeDir(t), "compose.yaml"), map[string]string{"SAGASUITE_TAG": "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if img := p.Services["notification"].Image; img != "sagasuite/notification:v1.2.3" {
		t.Errorf("with SAGASUITE_TAG=v1.2.3 the notification image is %q", img)
	}
}

// The compose file's secrets and env files are the only place credentials
// live: none of their values appears in compose.yaml itself.
func TestNoCredentialInTheComposeFile(t *testing.T) {
	content := string(composeFile(t))
	files, err := filepath.Glob(filepath.Join(composeDir(t), "credentials", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no credential files (%v)", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, word := range strings.Fields(string(b)) {
			if strings.HasPrefix(word, "dev-only-") && strings.Contains(content, word) {
				t.Errorf("compose.yaml holds %s from %s", word, filepath.Base(f))
			}
		}
	}
}

// Each planted mistake must be caught, by compose-go's own loading or by a
// check here, with the reason given.
func TestBrokenVariantsFail(t *testing.T) {
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "nothing-here")
	variants := []struct {
		name     string
		old, new string
		env      map[string]string
		envFile  bool   // old is in a credentials/*.env file, not in compose.yaml
		want     string // in the load error or in one problem
	}{
		{
			name: "waits for a healthy service that has no healthcheck",
			old:  "      otel-collector:\n        condition: service_started\n\n  inventory:",
			new:  "      otel-collector:\n        condition: service_healthy\n\n  inventory:",
			want: "service order waits for otel-collector to be healthy, but otel-collector has no healthcheck",
		},
		{
			name: "depends on a service that does not exist",
			old:  "      mariadb-init:\n        condition: service_completed_successfully\n      otel-collector:\n        condition: service_started\n\n  inventory:",
			new:  "      mariadb-inits:\n        condition: service_completed_successfully\n      otel-collector:\n        condition: service_started\n\n  inventory:",
			want: "mariadb-inits",
		},
		{
			name: "waits for an init to complete that compose restarts",
			old:  "    restart: \"no\"\n    depends_on:\n      mariadb:",
			new:  "    restart: on-failure\n    depends_on:\n      mariadb:",
			want: "waits for mariadb-init to complete, but mariadb-init has restart: on-failure",
		},
		{
			name: "a server without a healthcheck",
			old:  "      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:9090/-/ready\"]",
			new:  "      disable: true",
			want: "service prometheus runs without a healthcheck",
		},
		{name: "image without a tag", old: "image: prom/prometheus:v3.5.0", new: "image: prom/prometheus", want: `image "prom/prometheus" needs a real tag`},
		{name: "image :latest", old: "image: cassandra:5.0.9\n    environment:", new: "image: cassandra:latest\n    environment:", want: `image "cassandra:latest" needs a real tag`},
		{name: "SAGASUITE_TAG=latest", env: map[string]string{"SAGASUITE_TAG": "latest"}, want: `image "sagasuite/order:latest" needs a real tag`},
		{
			name: "required variable missing (from the Config type)",
			old:  "      ORDER_KAFKA_BROKERS: kafka:9092\n", new: "",
			want: "service order: required variable ORDER_KAFKA_BROKERS is not set (order.Config)",
		},
		{
			name: "required variable only in an env file that is gone",
			old:  "      - credentials/payment.env", new: "      - path: " + missing + "\n        required: false",
			want: "service payment: env_file " + missing,
		},
		{
			name: "token settings incomplete",
			old:  "      SHIPPING_AUTH_AUDIENCE: sagasuite\n", new: "",
			want: "SHIPPING_AUTH_AUDIENCE is required",
		},
		{
			name: "JWKS file not mounted",
			old:  "      INVENTORY_AUTH_JWKS_FILE: /etc/sagasuite/auth/jwks.json",
			new:  "      INVENTORY_AUTH_JWKS_FILE: /etc/sagasuite/jwks.json",
			want: "INVENTORY_AUTH_JWKS_FILE=/etc/sagasuite/jwks.json is not mounted",
		},
		{
			name: "credential inline in the compose file",
			old:  "      PAYMENT_LOG_LEVEL: info\n",
			new:  "      PAYMENT_LOG_LEVEL: info\n      PAYMENT_MYSQL_DSN: payment:pw@tcp(mariadb:3306)/payment\n",
			want: "service payment: PAYMENT_MYSQL_DSN is set in the compose file",
		},
		{
			name: "password file names a secret the service does not mount",
			old:  "    secrets:\n      - cassandra_notification_password\n    ports:",
			new:  "    ports:",
			want: "NOTIFICATION_CASSANDRA_PASSWORD_FILE=/run/secrets/cassandra_notification_password names a secret the service does not mount",
		},
		{name: "port on every address", old: "- 127.0.0.1:9090:9090", new: "- 9090:9090", want: "service prometheus: port 9090 is published on every address"},
		{name: "port on 0.0.0.0", old: "- 127.0.0.1:29042:9042", new: "- 0.0.0.0:29042:9042", want: "service cassandra: port 29042 is published on 0.0.0.0"},
		{name: "random host port", old: "- 127.0.0.1:23306:3306", new: "- 3306", want: "service mariadb: container port 3306 is published on a random host port"},
		{name: "one host port twice", old: "- 127.0.0.1:8085:8085", new: "- 127.0.0.1:8084:8085", want: "host port 8084/tcp is published by both notification and shipping"},
		{name: "mounted file missing", old: "./mariadb/init.sql:/init/init.sql:ro", new: "./mariadb/init-missing.sql:/init/init.sql:ro", want: "init-missing.sql"},
		{name: "secret file missing", old: "file: ./credentials/postgres-password", new: "file: ./credentials/postgres-passwd", want: "postgres-passwd"},
		{name: "config file missing", old: "file: ./auth/jwks.json", new: "file: ./auth/jwk.json", want: "jwk.json"},
		{
			name: "secret used but not defined",
			old:  "    secrets:\n      - cassandra_notification_password\n    ports:",
			new:  "    secrets:\n      - cassandra_password\n    ports:",
			want: "cassandra_password",
		},
		{name: "root user", old: "\n  user: \"65532:65532\"", new: "\n  user: \"0:0\"", want: `service order: user "0:0", want 65532`},
		{name: "writable root", old: "  read_only: true\n  tmpfs:", new: "  read_only: false\n  tmpfs:", want: "service shipping: root filesystem is writable"},
		{name: "capabilities kept", old: "  cap_drop: [ALL]\n  security_opt", new: "  cap_drop: [NET_RAW]\n  security_opt", want: "service payment: cap_drop [NET_RAW] does not drop ALL"},
		{name: "privileges may grow", old: "  security_opt: [no-new-privileges:true]\n  restart: unless-stopped\n  # Above", new: "  restart: unless-stopped\n  # Above", want: "service inventory: security_opt [] lacks no-new-privileges:true"},
		{name: "no time to drain", old: "\n  stop_grace_period: 35s", new: "\n  stop_grace_period: 20s", want: "service notification: stop_grace_period 20s is not above NOTIFICATION_SHUTDOWN_TIMEOUT 20s"},
		{name: "schema: unknown attribute", old: "    read_only: true\n    cap_drop: [ALL]\n    security_opt: [no-new-privileges:true]\n    restart: unless-stopped\n    healthcheck:\n      test: [\"CMD\", \"wget\"", new: "    readonly: true\n    cap_drop: [ALL]\n    security_opt: [no-new-privileges:true]\n    restart: unless-stopped\n    healthcheck:\n      test: [\"CMD\", \"wget\"", want: "readonly"},
		// The console and the services' browser listeners.
		{name: "console lacks a service URL", old: "      CONSOLE_SHIPPING_URL: http://shipping:8094\n", new: "", want: "service console: required variable CONSOLE_SHIPPING_URL is not set (console.Config)"},
		{name: "console forwards to a port no web listener opens", old: "CONSOLE_ORDER_URL: http://order:8091", new: "CONSOLE_ORDER_URL: http://order:8081", want: `CONSOLE_ORDER_URL="http://order:8081", but order's ORDER_WEB_ADDR is ":8091"`},
		{name: "console URL names another service", old: "CONSOLE_PAYMENT_URL: http://payment:8093", new: "CONSOLE_PAYMENT_URL: http://order:8091", want: `CONSOLE_PAYMENT_URL="http://order:8091" names order, want the payment service`},
		{name: "a service without its web listener", old: "      INVENTORY_WEB_ADDR: \":8092\"\n", new: "", want: `but inventory's INVENTORY_WEB_ADDR is ""`},
		{name: "a web port published", old: "      - 127.0.0.1:8084:8084\n", new: "      - 127.0.0.1:8084:8084\n      - 127.0.0.1:8094:8094\n", want: "service shipping: its web port 8094 is published"},
		{name: "CORS origins although same origin", old: "      NOTIFICATION_WEB_ADDR: \":8095\"\n", new: "      NOTIFICATION_WEB_ADDR: \":8095\"\n      NOTIFICATION_WEB_ALLOWED_ORIGINS: http://127.0.0.1:8090\n", want: "NOTIFICATION_WEB_ALLOWED_ORIGINS=\"http://127.0.0.1:8090\": the page calls the console's own origin"},
		{name: "console runs as root", old: "    image: sagasuite/console:${SAGASUITE_TAG:-0.1.0}\n    user: \"65532:65532\"", new: "    image: sagasuite/console:${SAGASUITE_TAG:-0.1.0}\n    user: \"0:0\"", want: `service console: user "0:0", want 65532`},
		{name: "console without time to drain", old: "      CONSOLE_SHUTDOWN_TIMEOUT: 20s", new: "      CONSOLE_SHUTDOWN_TIMEOUT: 40s", want: "service console: stop_grace_period 35s is not above CONSOLE_SHUTDOWN_TIMEOUT 40s"},
		{name: "console left out", old: "\n  console:\n", new: "\n  consoles:\n", want: "the console (console) is not in the compose file"},
		{name: "a sagasuite service left out", old: "\n  notification:\n", new: "\n  notifications:\n", want: "sagasuite service notification is not in the compose file"},
		// Store credentials against the init containers.
		{name: "DSN password differs from the init's secret", old: "ORDER_MYSQL_DSN=order:dev-only-order-password@", new: "ORDER_MYSQL_DSN=order:other-password@", envFile: true, want: "secret mariadb_order_password (what mariadb-init gives the store user) differs from its DSN's password"},
		{name: "DSN names a database the init does not create", old: "@tcp(mariadb:3306)/inventory", new: "@tcp(mariadb:3306)/stock", envFile: true, want: `database "stock" of its DSN is not created by mariadb-init`},
		{name: "DSN user the init does not create", old: "PAYMENT_MYSQL_DSN=payment:", new: "PAYMENT_MYSQL_DSN=payments:", envFile: true, want: `user "payments" of its DSN is not created by mariadb-init`},
		{name: "DSN host is no service", old: "@tcp(mariadb:3306)/order", new: "@tcp(mysql:3306)/order", envFile: true, want: `store host "mysql" is no service`},
		{name: "MongoDB URI without PLAIN", old: "/?authMechanism=PLAIN", new: "/?authSource=admin", envFile: true, want: `authMechanism="", want PLAIN`},
		{name: "MongoDB URI password differs", old: "shipping:dev-only-shipping-password@ferretdb", new: "shipping:guess@ferretdb", envFile: true, want: "secret postgres_shipping_password (what postgres-init gives the store user) differs"},
		{name: "FerretDB database not created", old: "postgres://postgres:5432/ferretdb", new: "postgres://postgres:5432/mongo", want: `does not create FerretDB's database "mongo"`},
		{name: "Cassandra keyspace the init does not create", old: "NOTIFICATION_CASSANDRA_KEYSPACE: notification", new: "NOTIFICATION_CASSANDRA_KEYSPACE: notify", want: `keyspace "notify" is not created by cassandra-init`},
		{name: "Cassandra role the init does not create", old: "NOTIFICATION_CASSANDRA_USERNAME: notification", new: "NOTIFICATION_CASSANDRA_USERNAME: notifier", want: `Cassandra role "notifier" is not created by cassandra-init`},
		{name: "init lacks the password secret", old: "    secrets:\n      - cassandra_notification_password\n    security_opt", new: "    security_opt", want: "cassandra-init does not mount secret cassandra_notification_password"},
	}
	original := string(composeFile(t))
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			content := original
			switch {
			case v.envFile: // planted in a copy of the credentials file
				content = withPlantedEnvFile(t, t.TempDir(), original, v.old, v.new)
			case v.old != "":
				content = plant(t, original, v.old, v.new)
			}
			problems, err := problemsOf(t, []byte(content), v.env)
			if err != nil {
				if !strings.Contains(err.Error(), v.want) {
					t.Fatalf("compose-go refused the variant, but not for %q: %v", v.want, err)
				}
				t.Logf("compose-go refused it: %v", err)
				return
			}
			for _, p := range problems {
				if strings.Contains(p.Error(), v.want) {
					t.Logf("caught: %v", p)
					return
				}
			}
			t.Fatalf("no problem says %q; got %v", v.want, problems)
		})
	}
}

func problemsOf(t *testing.T, content []byte, env map[string]string) ([]error, error) {
	t.Helper()
	p, err := load(t, content, env)
	if err != nil {
		return nil, err
	}
	return append(Check(p, opts), CheckStores(p, opts)...), nil
}

// plant replaces old by new once, and fails when old is not in s exactly
// once (so a variant never silently tests the unchanged file).
func plant(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("the planted text occurs %d times in compose.yaml, want once: %q", n, old)
	}
	return strings.Replace(s, old, new, 1)
}

// withPlantedEnvFile copies the credentials env file holding old into dir
// with the mistake planted, and points compose.yaml at the copy.
func withPlantedEnvFile(t *testing.T, dir, compose, old, new string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(composeDir(t), "credentials", "*.env"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), old) {
			continue
		}
		copyPath := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(copyPath, []byte(plant(t, string(b), old, new)), 0o600); err != nil {
			t.Fatal(err)
		}
		return plant(t, compose, "- credentials/"+filepath.Base(f), "- "+copyPath)
	}
	t.Fatalf("no credentials/*.env holds %q", old)
	return ""
}

func TestLoadNamesAMissingFile(t *testing.T) {
	_, err := Load(context.Background(), filepath.Join(t.TempDir(), "compose.yaml"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want a not-exist error", err)
	}
}

// The README's table names the images and host ports compose.yaml has, so a
// bump or a port change in one without the other fails.
func TestReadmeTableMatchesTheFile(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(composeDir(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Load(context.Background(), filepath.Join(composeDir(t), "compose.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range sortedNames(p.Services) {
		s := p.Services[name]
		row := ""
		for _, line := range strings.Split(string(readme), "\n") {
			if strings.HasPrefix(line, "| "+name+" |") {
				row = line
			}
		}
		if row == "" {
			t.Errorf("README's table has no row for %s", name)
			continue
		}
		image := s.Image
		if strings.HasPrefix(image, "sagasuite/") {
			image = strings.SplitN(image, ":", 2)[0] // the tag is SAGASUITE_TAG's
		}
		if !strings.Contains(row, "| "+image+" |") {
			t.Errorf("README row %q does not name the image %s", row, image)
		}
		for _, port := range s.Ports {
			if !strings.Contains(row, port.Published) {
				t.Errorf("README row for %s does not name host port %s", name, port.Published)
			}
		}
	}
}

// promtool accepts the compose Prometheus config with its rules read from
// where compose mounts them, and every scrape target is a compose service.
func TestPrometheusConfigIsValid(t *testing.T) {
	p, err := Load(context.Background(), filepath.Join(composeDir(t), "compose.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	prom := p.Services["prometheus"]
	var configFile string
	mounts := map[string]string{} // container path → host path
	for _, v := range prom.Volumes {
		if v.Type == types.VolumeTypeBind {
			mounts[v.Target] = v.Source
			if v.Target == "/etc/prometheus/prometheus.yml" {
				configFile = v.Source
			}
		}
	}
	if configFile == "" {
		t.Fatal("prometheus mounts no /etc/prometheus/prometheus.yml")
	}
	b, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for target, source := range mounts {
		text = strings.ReplaceAll(text, target, source)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := promcheck.Promtool(context.Background(), dir, "check", "config", "prometheus.yml")
	if err != nil || !strings.Contains(out, "SUCCESS: 1 rule files found") {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	targets := scrapeTarget.FindAllStringSubmatch(text, -1)
	if len(targets) < len(opts.Services) {
		t.Errorf("%d scrape targets, want at least one per sagasuite service", len(targets))
	}
	for _, m := range targets {
		if _, ok := p.Services[m[1]]; !ok {
			t.Errorf("scrape target %s:%s is no compose service", m[1], m[2])
		}
	}
}

var scrapeTarget = regexp.MustCompile(`"([a-z][a-z0-9-]*):(\d+)"`)
