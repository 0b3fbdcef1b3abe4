// Package config loads a service's settings from environment variables once,
// at start-up, and reports every missing or malformed variable in one error so
// an operator fixes them all in one go.
//
// A service declares a struct with caarlos0/env tags, usually embedding
// Common, and calls Load with its prefix:
//
//	type Config struct {
//		config.Common
//		Deadline time.Duration `env:"DEADLINE" envDefault:"5m"`
//		DSN      string        `env:"MYSQL_DSN,required"`
//	}
//
//	cfg, err := config.Load[Config]("ORDER")
//	if err != nil {
//		fmt.Fprintln(os.Stderr, err) // config: ORDER_MYSQL_DSN is required; ...
//		os.Exit(1)
//	}
//
// Every key is read with the prefix (ORDER_GRPC_ADDR). Variables of the
// OpenTelemetry specification (OTEL_*) are also read without it, so the
// standard OTEL_EXPORTER_OTLP_ENDPOINT set for a whole pod or cluster applies;
// a prefixed one (ORDER_OTEL_EXPORTER_OTLP_ENDPOINT) wins.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Common holds the settings every service has. Embed it in a service's
// config struct; Load then also fills ServiceName from the prefix when
// OTEL_SERVICE_NAME is unset.
type Common struct {
	// ServiceName names the service in traces, metrics and logs.
	ServiceName string `env:"OTEL_SERVICE_NAME"`
	// GRPCAddr is where the gRPC API listens.
	GRPCAddr string `env:"GRPC_ADDR" envDefault:":9090"`
	// OpsAddr is where the HTTP server for /metrics, /healthz and /readyz listens.
	OpsAddr string `env:"OPS_ADDR" envDefault:":8080"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel LogLevel `env:"LOG_LEVEL" envDefault:"info"`
	// LogFormat is json or text.
	LogFormat LogFormat `env:"LOG_FORMAT" envDefault:"json"`
	// OTLPEndpoint is the OTLP/gRPC collector for traces; empty means spans
	// are created (trace ids in logs and headers) but not exported.
	OTLPEndpoint string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	// ShutdownTimeout bounds the graceful part of a shutdown.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"15s"`
	// PprofEnabled serves net/http/pprof under /debug/pprof/ on the ops
	// port. Off by default: profiles reveal internals and cost CPU while
	// they run, so an operator turns them on where they are wanted.
	PprofEnabled bool `env:"PPROF_ENABLED" envDefault:"false"`
	// GRPCReflection serves the gRPC reflection API (grpcurl without proto
	// files). Off by default: it tells any caller every method and message;
	// the dev stack turns it on.
	GRPCReflection bool `env:"GRPC_REFLECTION" envDefault:"false"`

	GRPCLimits
	// WebAddr, when set, is a second listener answering gRPC-Web and the
	// Connect protocol (browsers) on the same handlers; empty: none.
	WebAddr string `env:"WEB_ADDR"`
	// WebAllowedOrigins are the exact origins ("https://shop.example.com")
	// whose pages may call the web listener (CORS); "*" is refused.
	WebAllowedOrigins []string `env:"WEB_ALLOWED_ORIGINS" envSeparator:","`
	// TLSCertFile and TLSKeyFile, both set, make the gRPC and ops listeners
	// serve TLS with this PEM pair (e.g. a mounted kubernetes.io/tls
	// Secret), re-read when the files change; both empty: plaintext.
	TLSCertFile string `env:"TLS_CERT_FILE"`
	TLSKeyFile  string `env:"TLS_KEY_FILE"`

	// Auth says whose bearer tokens the gRPC API and the ops port's admin
	// endpoints accept (<P>_AUTH_*). A service refuses to start without it
	// (AuthConfig.Check): there is no open mode.
	Auth AuthConfig `envPrefix:"AUTH_"`
}

// AuthConfig locates the token issuer's public keys and names the issuer
// and audience every token must carry.
type AuthConfig struct {
	// JWKSFile (a mounted Secret or ConfigMap, re-read on change) or
	// JWKSURL (the identity provider's, refreshed): exactly one.
	JWKSFile string `env:"JWKS_FILE"`
	JWKSURL  string `env:"JWKS_URL"`
	Issuer   string `env:"ISSUER"`
	Audience string `env:"AUDIENCE"`
}

// Check names every missing or conflicting <prefix>_AUTH_* variable. It is
// not a required tag, because an in-process caller (tests, the dev stack)
// may hand the service a verifier instead; the service's Run calls it when
// none was handed.
func (a AuthConfig) Check(prefix string) error {
	if prefix != "" && !strings.HasSuffix(prefix, "_") {
		prefix += "_"
	}
	var problems []error
	switch {
	case a.JWKSFile == "" && a.JWKSURL == "":
		problems = append(problems, &VarError{Key: prefix + "AUTH_JWKS_FILE", Problem: "or " + prefix + "AUTH_JWKS_URL is required (every gRPC call needs a verified bearer token)"})
	case a.JWKSFile != "" && a.JWKSURL != "":
		problems = append(problems, &VarError{Key: prefix + "AUTH_JWKS_FILE", Problem: "and " + prefix + "AUTH_JWKS_URL are both set; set one"})
	}
	if a.Issuer == "" {
		problems = append(problems, &VarError{Key: prefix + "AUTH_ISSUER", Problem: "is required"})
	}
	if a.Audience == "" {
		problems = append(problems, &VarError{Key: prefix + "AUTH_AUDIENCE", Problem: "is required"})
	}
	if len(problems) > 0 {
		return &Error{Problems: problems}
	}
	return nil
}

// GRPCLimits bound what one caller can make the gRPC server hold. Zero
// means the server's default (libs/grpcserver), so a config built in code
// (the dev stack, tests) gets the production bounds too.
type GRPCLimits struct {
	// MaxConcurrentStreams caps concurrent calls on one connection (default 100).
	MaxConcurrentStreams uint32 `env:"GRPC_MAX_CONCURRENT_STREAMS"`
	// MaxRecvMsgBytes caps one request message (default 1 MiB).
	MaxRecvMsgBytes int `env:"GRPC_MAX_RECV_MSG_BYTES"`
	// MaxSendMsgBytes caps one response message (default 4 MiB).
	MaxSendMsgBytes int `env:"GRPC_MAX_SEND_MSG_BYTES"`
	// KeepaliveMinTime: a client pinging more often than this is sent
	// GOAWAY (default 30s); pings without an open call are refused.
	KeepaliveMinTime time.Duration `env:"GRPC_KEEPALIVE_MIN_TIME"`
	// KeepaliveTime: the server pings a connection idle this long to see it
	// is alive (default 2m); KeepaliveTimeout: it closes the connection when
	// no answer comes within this (default 20s).
	KeepaliveTime    time.Duration `env:"GRPC_KEEPALIVE_TIME"`
	KeepaliveTimeout time.Duration `env:"GRPC_KEEPALIVE_TIMEOUT"`
	// MaxConnectionIdle closes a connection without calls for this long
	// (default 15m).
	MaxConnectionIdle time.Duration `env:"GRPC_MAX_CONNECTION_IDLE"`
	// MaxConnectionAge, when set, makes clients reconnect after this long
	// (spreading them over new replicas); calls then get
	// MaxConnectionAgeGrace to finish (default 1m). Default: no limit.
	MaxConnectionAge      time.Duration `env:"GRPC_MAX_CONNECTION_AGE"`
	MaxConnectionAgeGrace time.Duration `env:"GRPC_MAX_CONNECTION_AGE_GRACE"`
}

// ValidateSection checks the common settings; Load calls it (see Section).
func (c Common) ValidateSection(prefix string) error {
	var errs []error
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, fmt.Errorf("%sTLS_CERT_FILE and %sTLS_KEY_FILE must be set together", prefix, prefix))
	}
	for key, file := range map[string]string{"TLS_CERT_FILE": c.TLSCertFile, "TLS_KEY_FILE": c.TLSKeyFile} {
		if file == "" {
			continue
		}
		if _, err := os.Stat(file); err != nil {
			errs = append(errs, &VarError{Key: prefix + key, Problem: fmt.Sprintf(": cannot read %q: %v", file, err), Err: err})
		}
	}
	for _, origin := range c.WebAllowedOrigins {
		if err := CheckWebOrigin(origin); err != nil {
			errs = append(errs, &VarError{Key: prefix + "WEB_ALLOWED_ORIGINS", Problem: ": " + err.Error(), Err: err})
		}
	}
	if len(c.WebAllowedOrigins) > 0 && c.WebAddr == "" {
		errs = append(errs, &VarError{Key: prefix + "WEB_ALLOWED_ORIGINS", Problem: "is set but " + prefix + "WEB_ADDR is not: no web listener would use it"})
	}
	return errors.Join(append(errs, c.GRPCLimits.validate(prefix))...)
}

// CheckWebOrigin accepts one exact browser origin: scheme http or https and
// a host, optionally a port, nothing more (browsers send it in that form in
// the Origin header, which is compared byte for byte). A wildcard is
// refused: it would let any site's scripts call the API with a user's token.
func CheckWebOrigin(origin string) error {
	if origin == "*" || strings.Contains(origin, "*") {
		return fmt.Errorf("%q: wildcard origins are refused; list each origin (e.g. https://shop.example.com)", origin)
	}
	u, err := url.Parse(origin)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", origin, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q is not an origin: want scheme://host[:port], scheme http or https", origin)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an origin: no user, path, query or fragment allowed", origin)
	}
	if origin != u.Scheme+"://"+u.Host {
		return fmt.Errorf("%q is not an origin as browsers send it: want %q", origin, u.Scheme+"://"+u.Host)
	}
	return nil
}

func (l GRPCLimits) validate(prefix string) error {
	var errs []error
	size := func(key string, n int) {
		// Below 1 KiB no real request fits; above 256 MiB one call could
		// take a pod's memory.
		if n != 0 && (n < 1<<10 || n > 256<<20) {
			errs = append(errs, &VarError{Key: prefix + key, Problem: fmt.Sprintf(": must be 1024 to 268435456 bytes, got %d", n)})
		}
	}
	size("GRPC_MAX_RECV_MSG_BYTES", l.MaxRecvMsgBytes)
	size("GRPC_MAX_SEND_MSG_BYTES", l.MaxSendMsgBytes)
	if l.MaxConcurrentStreams > 100000 {
		errs = append(errs, &VarError{Key: prefix + "GRPC_MAX_CONCURRENT_STREAMS", Problem: fmt.Sprintf(": must be 1 to 100000, got %d", l.MaxConcurrentStreams)})
	}
	for key, d := range map[string]time.Duration{
		"GRPC_KEEPALIVE_MIN_TIME": l.KeepaliveMinTime, "GRPC_KEEPALIVE_TIME": l.KeepaliveTime,
		"GRPC_KEEPALIVE_TIMEOUT": l.KeepaliveTimeout, "GRPC_MAX_CONNECTION_IDLE": l.MaxConnectionIdle,
		"GRPC_MAX_CONNECTION_AGE": l.MaxConnectionAge, "GRPC_MAX_CONNECTION_AGE_GRACE": l.MaxConnectionAgeGrace,
	} {
		if d < 0 {
			errs = append(errs, &VarError{Key: prefix + key, Problem: fmt.Sprintf(": must not be negative, got %s", d)})
		}
	}
	if l.KeepaliveTime != 0 && l.KeepaliveTime < time.Second {
		// grpc-go raises anything under 1 s to 1 s anyway; say so instead.
		errs = append(errs, &VarError{Key: prefix + "GRPC_KEEPALIVE_TIME", Problem: fmt.Sprintf(": must be at least 1s, got %s", l.KeepaliveTime)})
	}
	return errors.Join(errs...)
}

// common lets Load find an embedded Common in any config struct: the
// unexported method is promoted to the embedding type and cannot be shadowed
// by accident from another package.
func (c *Common) common() *Common { return c }

type commonHolder interface{ common() *Common }

// LogLevel is a validated log level; it implements slog.Leveler.
type LogLevel string

// Log levels accepted in LOG_LEVEL.
const (
	LevelDebug LogLevel = "debug"
	LevelInfo  LogLevel = "info"
	LevelWarn  LogLevel = "warn"
	LevelError LogLevel = "error"
)

// Level returns the slog level; an unknown value (impossible after Load) is info.
func (l LogLevel) Level() slog.Level {
	switch l {
	case LevelDebug:
		return slog.LevelDebug
	case LevelWarn:
		return slog.LevelWarn
	case LevelError:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// LogFormat is a validated log output format.
type LogFormat string

// Log formats accepted in LOG_FORMAT.
const (
	FormatJSON LogFormat = "json"
	FormatText LogFormat = "text"
)

// Section is implemented by a settings struct meant to be embedded in
// service configs (Common, the Kafka settings …): Load calls ValidateSection
// on every embedded field that has it, with the variables' prefix (e.g.
// "ORDER_"), besides the config's own Validate — an embedding config's
// Validate would otherwise hide the embedded one.
type Section interface {
	ValidateSection(prefix string) error
}

// Validator is implemented by config structs that check more than types:
// Load calls Validate after parsing and reports its error with the others.
type Validator interface {
	Validate() error
}

// Error is what Load returns: every problem found, in declaration order.
type Error struct {
	Problems []error
}

func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return "config: " + strings.Join(msgs, "; ")
}

// Unwrap gives errors.Is and errors.As access to each problem.
func (e *Error) Unwrap() []error { return e.Problems }

// VarError is one environment variable that is missing or malformed.
type VarError struct {
	Key string
	// Problem is the human text after the key, e.g. "is required" or
	// `: invalid duration "5x"`.
	Problem string
	Err     error
}

func (e *VarError) Error() string {
	if strings.HasPrefix(e.Problem, ":") {
		return e.Key + e.Problem
	}
	return e.Key + " " + e.Problem
}

func (e *VarError) Unwrap() error { return e.Err }

// Load reads T from the process environment; see LoadFrom.
func Load[T any](prefix string) (T, error) {
	return LoadFrom[T](prefix, os.Environ())
}

// LoadFrom reads T from environ ("KEY=value" entries, as os.Environ returns),
// each key prefixed with prefix + "_". It returns one *Error naming every
// missing or bad variable, or nil.
func LoadFrom[T any](prefix string, environ []string) (T, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "_") {
		prefix += "_"
	}
	vars := env.ToMap(environ)
	for key, value := range env.ToMap(environ) { // a second copy: vars grows here
		if strings.HasPrefix(key, "OTEL_") {
			if _, set := vars[prefix+key]; !set {
				vars[prefix+key] = value
			}
		}
	}

	// env reports a parse failure by struct field name only; OnSet runs just
	// before each field is parsed, so the parsers below know which variable
	// they are reading and can name it.
	var current string
	cfg, err := env.ParseAsWithOptions[T](env.Options{
		Prefix:      prefix,
		Environment: vars,
		OnSet:       func(key string, _ any, _ bool) { current = key },
		FuncMap:     parsers(func() string { return current }),
	})
	var problems []error
	if err != nil {
		problems = append(problems, explain(err)...)
	}
	if len(problems) == 0 {
		if holder, ok := any(&cfg).(commonHolder); ok {
			c := holder.common()
			if c.ServiceName == "" {
				c.ServiceName = strings.ToLower(strings.TrimSuffix(prefix, "_"))
			}
		}
		problems = append(problems, validateSections(reflect.ValueOf(&cfg).Elem(), prefix)...)
		if v, ok := any(&cfg).(Validator); ok {
			if err := v.Validate(); err != nil {
				problems = append(problems, err)
			}
		}
	}
	if len(problems) > 0 {
		var zero T
		return zero, &Error{Problems: problems}
	}
	return cfg, nil
}

// validateSections calls ValidateSection on every embedded struct of v, at
// any depth, each once.
func validateSections(v reflect.Value, prefix string) []error {
	if v.Kind() != reflect.Struct {
		return nil
	}
	var problems []error
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.Anonymous || !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		target := fv.Interface()
		if fv.CanAddr() { // a pointer receiver may record what it checked (e.g. the prefix)
			target = fv.Addr().Interface()
		}
		if s, ok := target.(Section); ok {
			if err := s.ValidateSection(prefix); err != nil {
				problems = append(problems, err)
			}
		}
		problems = append(problems, validateSections(fv, prefix)...)
	}
	return problems
}

// explain turns env's aggregate error into one problem per variable.
func explain(err error) []error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return []error{err}
	}
	problems := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var (
			notSet  env.VarIsNotSetError
			empty   env.EmptyVarError
			file    env.LoadFileContentError
			parse   env.ParseError
			invalid *VarError
		)
		switch {
		case errors.As(e, &parse) && errors.As(parse.Err, &invalid):
			// env's ParseError does not unwrap; the cause is ours.
			problems = append(problems, invalid)
		case errors.As(e, &notSet):
			problems = append(problems, &VarError{Key: notSet.Key, Problem: "is required", Err: e})
		case errors.As(e, &empty):
			problems = append(problems, &VarError{Key: empty.Key, Problem: "must not be empty", Err: e})
		case errors.As(e, &file):
			problems = append(problems, &VarError{Key: file.Key, Problem: fmt.Sprintf(": cannot read file %q: %v", file.Filename, file.Err), Err: e})
		case errors.As(e, &parse):
			// A type parsed by its own UnmarshalText: env knows only the field.
			problems = append(problems, fmt.Errorf("field %s (%s): %w", parse.Name, parse.Type, parse.Err))
		default:
			problems = append(problems, e)
		}
	}
	return problems
}

// parsers returns env parsers for the types services use, each failing with
// a *VarError that names the variable being read.
func parsers(key func() string) map[reflect.Type]env.ParserFunc {
	bad := func(what, value string, err error) error {
		return &VarError{Key: key(), Problem: fmt.Sprintf(": invalid %s %q", what, value), Err: err}
	}
	intParser := func(bits int, what string) env.ParserFunc {
		return func(v string) (any, error) {
			n, err := strconv.ParseInt(v, 0, bits)
			if err != nil {
				return nil, bad(what, v, err)
			}
			return n, nil
		}
	}
	uintParser := func(bits int, what string) env.ParserFunc {
		return func(v string) (any, error) {
			n, err := strconv.ParseUint(v, 0, bits)
			if err != nil {
				return nil, bad(what, v, err)
			}
			return n, nil
		}
	}
	// convert wraps a parser whose result must be converted to the field's
	// exact type (env sets FuncMap results without conversion).
	convert := func(t reflect.Type, p env.ParserFunc) env.ParserFunc {
		return func(v string) (any, error) {
			out, err := p(v)
			if err != nil {
				return nil, err
			}
			return reflect.ValueOf(out).Convert(t).Interface(), nil
		}
	}
	m := map[reflect.Type]env.ParserFunc{
		reflect.TypeFor[string](): func(v string) (any, error) { return v, nil },
		reflect.TypeFor[bool](): func(v string) (any, error) {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, bad("boolean", v, err)
			}
			return b, nil
		},
		reflect.TypeFor[float64](): func(v string) (any, error) {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, bad("number", v, err)
			}
			return f, nil
		},
		reflect.TypeFor[time.Duration](): func(v string) (any, error) {
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, bad("duration", v, err)
			}
			return d, nil
		},
		reflect.TypeFor[url.URL](): func(v string) (any, error) {
			u, err := url.Parse(v)
			if err != nil {
				return nil, bad("URL", v, err)
			}
			return *u, nil
		},
		reflect.TypeFor[LogLevel](): func(v string) (any, error) {
			switch l := LogLevel(strings.ToLower(v)); l {
			case LevelDebug, LevelInfo, LevelWarn, LevelError:
				return l, nil
			}
			return nil, &VarError{Key: key(), Problem: fmt.Sprintf(": invalid log level %q (want debug, info, warn or error)", v)}
		},
		reflect.TypeFor[LogFormat](): func(v string) (any, error) {
			switch f := LogFormat(strings.ToLower(v)); f {
			case FormatJSON, FormatText:
				return f, nil
			}
			return nil, &VarError{Key: key(), Problem: fmt.Sprintf(": invalid log format %q (want json or text)", v)}
		},
	}
	m[reflect.TypeFor[float32]()] = convert(reflect.TypeFor[float32](), m[reflect.TypeFor[float64]()])
	for t, bits := range map[reflect.Type]int{
		reflect.TypeFor[int](): strconv.IntSize, reflect.TypeFor[int8](): 8, reflect.TypeFor[int16](): 16,
		reflect.TypeFor[int32](): 32, reflect.TypeFor[int64](): 64,
	} {
		m[t] = convert(t, intParser(bits, "integer"))
	}
	for t, bits := range map[reflect.Type]int{
		reflect.TypeFor[uint](): strconv.IntSize, reflect.TypeFor[uint8](): 8, reflect.TypeFor[uint16](): 16,
		reflect.TypeFor[uint32](): 32, reflect.TypeFor[uint64](): 64,
	} {
		m[t] = convert(t, uintParser(bits, "unsigned integer"))
	}
	return m
}
