package devstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// DemoOperator is the subject of the operator token the banner prints.
const DemoOperator = "dev-operator"

// BannerTokenTTL is how long the printed tokens live: a working day of
// pasting grpcurl lines; `sagactl token` mints more.
const BannerTokenTTL = 24 * time.Hour

// authSettings are what the stack's services verify tokens with (their
// config.Common.Auth): the JWKS file of the key the stack generated, its
// issuer and audience.
type authSettings struct {
	jwksFile, issuer, audience string
}

// startAuth generates the stack's signing key in a temporary directory
// (removed by Stop) and the banner's customer and operator tokens.
func (s *Stack) startAuth(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "sagasuite-dev-auth-")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	s.stops = append(s.stops, func() error { return os.RemoveAll(dir) })
	keys, err := suite.NewKeys(dir)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	s.Keys = keys
	s.auth = authSettings{jwksFile: keys.Files.PublicJWKS, issuer: keys.Issuer, audience: keys.Audience}
	if s.CustomerToken, err = keys.Mint(auth.Principal{Subject: DemoCustomer, Roles: []auth.Role{auth.RoleCustomer}}, BannerTokenTTL); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if s.OperatorToken, err = keys.Mint(auth.Principal{Subject: DemoOperator, Roles: []auth.Role{auth.RoleOperator}}, BannerTokenTTL); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

// ToolToken is a token source for a tool acting on this stack with a
// service identity that may also seed the catalog (subject e.g.
// "sagactl-demo"; see suite.Keys.Tool).
func (s *Stack) ToolToken(subject string) suite.TokenSource { return s.Keys.Tool(subject) }

// State is what a running `sagactl dev` leaves in its state file, so other
// sagactl commands (token, audit, bench, demo, outbox) find its key and
// addresses without flags. The file is shell-sourceable KEY=value lines.
type State struct {
	PID           int
	SigningKey    string // private JWK file
	JWKS          string // public JWKS file (what the services verify with)
	Issuer        string
	Audience      string
	CustomerID    string
	CustomerToken string
	OperatorToken string
	GRPC, Ops     suite.Addrs
	// Web are the browser (gRPC-Web, Connect) listeners' addresses and
	// ConsoleURL the web console's ("" when not served).
	Web        suite.Addrs
	ConsoleURL string
	// Kafka is the stack's bootstrap broker(s), comma-separated, and
	// TopicPrefix its topic prefix (sagactl record reads them).
	Kafka       string
	TopicPrefix string
}

// StateFileEnv names a variable that moves the state file (tests, or two
// users of one cache directory).
const StateFileEnv = "SAGASUITE_DEV_STATE"

// DefaultStateFile is where `sagactl dev` writes its State and the other
// sagactl commands look for it: $SAGASUITE_DEV_STATE, else
// <user cache dir>/sagasuite/dev-stack.env.
func DefaultStateFile() string {
	if path := os.Getenv(StateFileEnv); path != "" {
		return path
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "sagasuite", "dev-stack.env")
}

// state describes the running stack.
func (s *Stack) state() State {
	return State{PID: os.Getpid(), SigningKey: s.Keys.Files.PrivateJWK, JWKS: s.Keys.Files.PublicJWKS,
		Issuer: s.Keys.Issuer, Audience: s.Keys.Audience, CustomerID: DemoCustomer,
		CustomerToken: s.CustomerToken, OperatorToken: s.OperatorToken, GRPC: s.GRPC, Ops: s.Ops,
		Web: s.Web, ConsoleURL: s.ConsoleURL,
		Kafka: s.Servers.Kafka, TopicPrefix: s.Servers.TopicPrefix}
}

const statePrefix = "SAGASUITE_DEV_"

func (st State) vars() map[string]string {
	v := map[string]string{
		"PID": strconv.Itoa(st.PID), "SIGNING_KEY": st.SigningKey, "JWKS": st.JWKS,
		"ISSUER": st.Issuer, "AUDIENCE": st.Audience, "CUSTOMER_ID": st.CustomerID,
		"CUSTOMER_TOKEN": st.CustomerToken, "OPERATOR_TOKEN": st.OperatorToken,
		"KAFKA": st.Kafka, "TOPIC_PREFIX": st.TopicPrefix, "CONSOLE_URL": st.ConsoleURL,
	}
	for _, name := range suite.Services {
		v[strings.ToUpper(name)+"_GRPC"] = st.GRPC.Of(name)
		v[strings.ToUpper(name)+"_OPS"] = st.Ops.Of(name)
		v[strings.ToUpper(name)+"_WEB"] = st.Web.Of(name)
	}
	return v
}

// writeStateFile writes the stack's State to path and has Stop remove it.
func (s *Stack) writeStateFile(path string) error {
	if err := s.state().Write(path); err != nil {
		return err
	}
	s.stateFile = path
	key := s.Keys.Files.PrivateJWK
	s.stops = append(s.stops, func() error {
		// Only our own: a later dev stack may have replaced it.
		if st, err := ReadStateFile(path); err == nil && st.SigningKey == key {
			return os.Remove(path)
		}
		return nil
	})
	return nil
}

// Write writes st to path (0600: it holds tokens and names the private
// key), replacing what another stack left there.
func (st State) Write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	vars := st.vars()
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# written by `sagactl dev` (pid " + strconv.Itoa(st.PID) + "); removed when it stops. Source it for the tokens.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s%s=%s\n", statePrefix, k, vars[k]) // values hold no spaces or quotes
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// ErrNoDevStack: no state file, or the stack that wrote it is gone.
var ErrNoDevStack = errors.New("no running dev stack found")

// ReadStateFile reads a State written by a running `sagactl dev`.
func ReadStateFile(path string) (State, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return State{}, fmt.Errorf("%w (%s does not exist; start one with `make run`)", ErrNoDevStack, path)
		}
		return State{}, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(k, statePrefix) {
			return State{}, fmt.Errorf("%s: unexpected line %q", path, line)
		}
		vars[strings.TrimPrefix(k, statePrefix)] = v
	}
	if err := sc.Err(); err != nil {
		return State{}, fmt.Errorf("%s: %w", path, err)
	}
	st := State{SigningKey: vars["SIGNING_KEY"], JWKS: vars["JWKS"], Issuer: vars["ISSUER"], Audience: vars["AUDIENCE"],
		CustomerID: vars["CUSTOMER_ID"], CustomerToken: vars["CUSTOMER_TOKEN"], OperatorToken: vars["OPERATOR_TOKEN"],
		Kafka: vars["KAFKA"], TopicPrefix: vars["TOPIC_PREFIX"], ConsoleURL: vars["CONSOLE_URL"]}
	for _, name := range suite.Services {
		st.GRPC.Set(name, vars[strings.ToUpper(name)+"_GRPC"])
		st.Ops.Set(name, vars[strings.ToUpper(name)+"_OPS"])
		st.Web.Set(name, vars[strings.ToUpper(name)+"_WEB"])
	}
	if st.PID, err = strconv.Atoi(vars["PID"]); err != nil || st.SigningKey == "" || st.Issuer == "" || st.Audience == "" {
		return State{}, fmt.Errorf("%s: incomplete dev stack state (PID, SIGNING_KEY, ISSUER, AUDIENCE needed)", path)
	}
	// A stack killed without its cleanup leaves the file behind.
	if st.PID != os.Getpid() && syscall.Kill(st.PID, 0) == syscall.ESRCH {
		return State{}, fmt.Errorf("%w (%s names pid %d, which has ended)", ErrNoDevStack, path, st.PID)
	}
	if _, err := os.Stat(st.SigningKey); err != nil {
		return State{}, fmt.Errorf("%w (%s names key %s: %v)", ErrNoDevStack, path, st.SigningKey, err)
	}
	return st, nil
}

// Keys loads the signing key the state names.
func (st State) Keys() (*suite.Keys, error) {
	return suite.LoadKeys(auth.KeyFiles{PrivateJWK: st.SigningKey, PublicJWKS: st.JWKS}, st.Issuer, st.Audience)
}
