package config_test

import (
	"errors"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/config"
)

type orderConfig struct {
	config.Common
	Deadline   time.Duration `env:"DEADLINE" envDefault:"5m"`
	MySQLDSN   string        `env:"MYSQL_DSN,required"`
	MaxRetries int           `env:"MAX_RETRIES" envDefault:"5"`
	Topics     []string      `env:"TOPICS" envDefault:"orders.v1,payments.v1"`
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, cfg orderConfig)
		wantErr []string // substrings of the one error, in order
	}{
		{
			name: "defaults",
			env:  map[string]string{"ORDER_MYSQL_DSN": "root@tcp(db)/orders"},
			check: func(t *testing.T, cfg orderConfig) {
				want := config.Common{
					ServiceName:     "order",
					GRPCAddr:        ":9090",
					OpsAddr:         ":8080",
					LogLevel:        config.LevelInfo,
					LogFormat:       config.FormatJSON,
					ShutdownTimeout: 15 * time.Second,
				}
				if !reflect.DeepEqual(cfg.Common, want) {
					t.Errorf("Common = %+v, want %+v", cfg.Common, want)
				}
				if cfg.Deadline != 5*time.Minute || cfg.MaxRetries != 5 || cfg.MySQLDSN != "root@tcp(db)/orders" {
					t.Errorf("service fields = %+v", cfg)
				}
				if len(cfg.Topics) != 2 || cfg.Topics[1] != "payments.v1" {
					t.Errorf("Topics = %q", cfg.Topics)
				}
			},
		},
		{
			name: "every value set",
			env: map[string]string{
				"ORDER_MYSQL_DSN":             "dsn",
				"OTEL_SERVICE_NAME":           "order-api",
				"ORDER_GRPC_ADDR":             "127.0.0.1:7000",
				"ORDER_OPS_ADDR":              "127.0.0.1:7001",
				"ORDER_LOG_LEVEL":             "DEBUG",
				"ORDER_LOG_FORMAT":            "text",
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
				"ORDER_SHUTDOWN_TIMEOUT":      "3s",
				"ORDER_DEADLINE":              "90s",
				"ORDER_MAX_RETRIES":           "7",
				"ORDER_PPROF_ENABLED":         "true",
			},
			check: func(t *testing.T, cfg orderConfig) {
				c := cfg.Common
				if c.ServiceName != "order-api" || c.GRPCAddr != "127.0.0.1:7000" || c.OpsAddr != "127.0.0.1:7001" ||
					c.LogLevel != config.LevelDebug || c.LogFormat != config.FormatText ||
					c.OTLPEndpoint != "http://collector:4317" || c.ShutdownTimeout != 3*time.Second || !c.PprofEnabled {
					t.Errorf("Common = %+v", c)
				}
				if c.LogLevel.Level() != slog.LevelDebug {
					t.Errorf("LogLevel.Level() = %v", c.LogLevel.Level())
				}
				if cfg.Deadline != 90*time.Second || cfg.MaxRetries != 7 {
					t.Errorf("service fields = %+v", cfg)
				}
			},
		},
		{
			name: "prefixed OTEL variable wins over the standard one",
			env: map[string]string{
				"ORDER_MYSQL_DSN":                   "dsn",
				"OTEL_EXPORTER_OTLP_ENDPOINT":       "http://shared:4317",
				"ORDER_OTEL_EXPORTER_OTLP_ENDPOINT": "http://mine:4317",
			},
			check: func(t *testing.T, cfg orderConfig) {
				if cfg.OTLPEndpoint != "http://mine:4317" {
					t.Errorf("OTLPEndpoint = %q", cfg.OTLPEndpoint)
				}
			},
		},
		{
			name:    "missing required",
			env:     map[string]string{},
			wantErr: []string{"config: ORDER_MYSQL_DSN is required"},
		},
		{
			name:    "bad duration",
			env:     map[string]string{"ORDER_MYSQL_DSN": "dsn", "ORDER_DEADLINE": "5x"},
			wantErr: []string{`config: ORDER_DEADLINE: invalid duration "5x"`},
		},
		{
			name:    "bad log level",
			env:     map[string]string{"ORDER_MYSQL_DSN": "dsn", "ORDER_LOG_LEVEL": "verbose"},
			wantErr: []string{`ORDER_LOG_LEVEL: invalid log level "verbose" (want debug, info, warn or error)`},
		},
		{
			name:    "bad log format",
			env:     map[string]string{"ORDER_MYSQL_DSN": "dsn", "ORDER_LOG_FORMAT": "xml"},
			wantErr: []string{`ORDER_LOG_FORMAT: invalid log format "xml"`},
		},
		{
			name: "every problem at once, in declaration order",
			env: map[string]string{
				"ORDER_LOG_LEVEL":        "loud",
				"ORDER_SHUTDOWN_TIMEOUT": "soon",
				"ORDER_DEADLINE":         "5x",
				"ORDER_MAX_RETRIES":      "many",
			},
			wantErr: []string{
				`config: ORDER_LOG_LEVEL: invalid log level "loud"`,
				`; ORDER_SHUTDOWN_TIMEOUT: invalid duration "soon"`,
				`; ORDER_DEADLINE: invalid duration "5x"`,
				`; ORDER_MYSQL_DSN is required`,
				`; ORDER_MAX_RETRIES: invalid integer "many"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := config.Load[orderConfig]("ORDER")
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				tt.check(t, cfg)
				return
			}
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want error", cfg)
			}
			msg := err.Error()
			rest := msg
			for _, want := range tt.wantErr {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("error %q lacks %q (or has it out of order)", msg, want)
				}
				rest = rest[i+len(want):]
			}
			var cfgErr *config.Error
			if !errors.As(err, &cfgErr) || len(cfgErr.Problems) != len(tt.wantErr) {
				t.Errorf("error %#v: want a *config.Error with %d problems", err, len(tt.wantErr))
			}
		})
	}
}

type validatedConfig struct {
	config.Common
	MinQty int `env:"MIN_QTY" envDefault:"1"`
	MaxQty int `env:"MAX_QTY" envDefault:"10"`
}

var errRange = errors.New("MIN_QTY must not exceed MAX_QTY")

func (c validatedConfig) Validate() error {
	if c.MinQty > c.MaxQty {
		return errRange
	}
	return nil
}

func TestLoadCallsValidate(t *testing.T) {
	clearEnv(t)
	t.Setenv("INVENTORY_MIN_QTY", "11")
	_, err := config.Load[validatedConfig]("INVENTORY_")
	if !errors.Is(err, errRange) {
		t.Fatalf("Load error = %v, want %v", err, errRange)
	}
	t.Setenv("INVENTORY_MIN_QTY", "2")
	cfg, err := config.Load[validatedConfig]("INVENTORY_")
	if err != nil || cfg.ServiceName != "inventory" {
		t.Fatalf("Load = %+v, %v", cfg, err)
	}
}

func TestVarErrorUnwrapsCause(t *testing.T) {
	_, err := config.LoadFrom[orderConfig]("ORDER", []string{"ORDER_MYSQL_DSN=x", "ORDER_DEADLINE=5x"})
	var varErr *config.VarError
	if !errors.As(err, &varErr) || varErr.Key != "ORDER_DEADLINE" || varErr.Err == nil {
		t.Fatalf("error %v: want a *config.VarError for ORDER_DEADLINE with a cause", err)
	}
}

// clearEnv hides variables of the machine running the tests that Load reads.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, key := range []string{"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		t.Setenv(key, "")
		// t.Setenv registers the restore; an empty value still counts as set.
		if err := os.Unsetenv(key); err != nil {
			t.Fatalf("unset %s: %v", key, err)
		}
	}
}

// <P>_AUTH_* fill Common.Auth; Check names what is missing or conflicting.
func TestAuthConfigIsReadAndChecked(t *testing.T) {
	type svc struct{ config.Common }
	cfg, err := config.LoadFrom[svc]("ORDER", []string{"ORDER_AUTH_JWKS_URL=https://idp/jwks", "ORDER_AUTH_ISSUER=https://idp", "ORDER_AUTH_AUDIENCE=sagasuite"})
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Auth; a.JWKSURL != "https://idp/jwks" || a.Issuer != "https://idp" || a.Audience != "sagasuite" || a.JWKSFile != "" {
		t.Fatalf("Auth = %+v", a)
	}
	if err := cfg.Auth.Check("ORDER"); err != nil {
		t.Errorf("Check(complete) = %v", err)
	}
	for name, tc := range map[string]struct {
		auth config.AuthConfig
		want []string
	}{
		"none":     {config.AuthConfig{}, []string{"ORDER_AUTH_JWKS_FILE or ORDER_AUTH_JWKS_URL is required", "ORDER_AUTH_ISSUER is required", "ORDER_AUTH_AUDIENCE is required"}},
		"two sets": {config.AuthConfig{JWKSFile: "f", JWKSURL: "u", Issuer: "i", Audience: "a"}, []string{"both set"}},
	} {
		err := tc.auth.Check("ORDER_")
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: Check = %v, want %q", name, err, want)
			}
		}
	}
}

// <P>_WEB_*: the browser listener and its allowed origins; a wildcard or
// something that is not an origin stops start-up naming the variable.
func TestWebSettings(t *testing.T) {
	type svc struct{ config.Common }
	cfg, err := config.LoadFrom[svc]("ORDER", []string{"ORDER_WEB_ADDR=:8091",
		"ORDER_WEB_ALLOWED_ORIGINS=http://127.0.0.1:8090,https://shop.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.WebAddr != ":8091" || !reflect.DeepEqual(cfg.WebAllowedOrigins, []string{"http://127.0.0.1:8090", "https://shop.example.com"}) {
		t.Fatalf("web settings = %q %q", cfg.WebAddr, cfg.WebAllowedOrigins)
	}
	unset, err := config.LoadFrom[svc]("ORDER", nil)
	if err != nil || unset.WebAddr != "" || len(unset.WebAllowedOrigins) != 0 {
		t.Fatalf("unset: %q %q %v: want no web listener", unset.WebAddr, unset.WebAllowedOrigins, err)
	}
	for _, bad := range []struct{ origins, want string }{
		{"*", "wildcard origins are refused"},
		{"https://*.example.com", "wildcard origins are refused"},
		{"shop.example.com", "is not an origin"},
		{"ftp://shop.example.com", "is not an origin"},
		{"https://shop.example.com/console", "no user, path, query or fragment"},
		{"https://shop.example.com/", "want \"https://shop.example.com\""},
		{"http://[::1", "is not a URL"},
		{"http://127.0.0.1:8090,", "is not an origin"},
	} {
		_, err := config.LoadFrom[svc]("ORDER", []string{"ORDER_WEB_ADDR=:8091", "ORDER_WEB_ALLOWED_ORIGINS=" + bad.origins})
		if err == nil || !strings.Contains(err.Error(), "ORDER_WEB_ALLOWED_ORIGINS") || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("origins %q: error %v, want one naming ORDER_WEB_ALLOWED_ORIGINS and %q", bad.origins, err, bad.want)
		}
	}
	_, err = config.LoadFrom[svc]("ORDER", []string{"ORDER_WEB_ALLOWED_ORIGINS=http://127.0.0.1:8090"})
	if err == nil || !strings.Contains(err.Error(), "ORDER_WEB_ADDR is not") {
		t.Errorf("origins without an address: %v, want an error naming ORDER_WEB_ADDR", err)
	}
}
