// Package promcheck runs Debian's Prometheus tools for the tests of
// deploy/prometheus: promtool on the rules, a real Prometheus server scraping
// a running suite, and the metric names PromQL expressions reference.
// deploy/local/infra.sh install puts prometheus and promtool on PATH.
package promcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sagasuite/sagasuite/libs/testenv"
)

// Binary finds a Prometheus tool ("prometheus", "promtool") on PATH or where
// Debian's package installs it.
func Binary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := "/usr/bin/" + name
	if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p, nil
	}
	return "", fmt.Errorf("%s not found on PATH or in /usr/bin: install it with `deploy/local/infra.sh install` (Debian package prometheus)", name)
}

// Promtool runs promtool with args in dir and returns its combined output;
// a non-zero exit is an error holding that output.
func Promtool(ctx context.Context, dir string, args ...string) (string, error) {
	bin, err := Binary("promtool")
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("promtool %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Options says how to start a Prometheus server.
type Options struct {
	ConfigFile string // --config.file
	DataDir    string // --storage.tsdb.path (the caller's, e.g. t.TempDir())
	// Addr is the loopback address to listen on (a port below 32768).
	Addr string
	// ReadyTimeout bounds the wait for /-/ready (default 1 minute).
	ReadyTimeout time.Duration
}

// Server is a running Prometheus. Stop it.
type Server struct {
	URL  string // http://Addr
	cmd  *exec.Cmd
	log  *testenv.SyncBuffer
	done chan error

	stopOnce sync.Once
	stopErr  error
}

// Start starts Prometheus and waits (bounded) until it answers /-/ready.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.ConfigFile == "" || opts.DataDir == "" || opts.Addr == "" {
		return nil, errors.New("promcheck.Start: ConfigFile, DataDir and Addr are required")
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = time.Minute
	}
	bin, err := Binary("prometheus")
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + opts.Addr, log: &testenv.SyncBuffer{Limit: 1 << 20}, done: make(chan error, 1)}
	s.cmd = exec.Command(bin,
		"--config.file="+opts.ConfigFile,
		"--storage.tsdb.path="+opts.DataDir,
		"--web.listen-address="+opts.Addr,
		"--log.level=warn",
	)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.done <- s.cmd.Wait() }()

	deadline := time.Now().Add(opts.ReadyTimeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/-/ready", nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case werr := <-s.done:
			s.done <- werr
			return nil, fmt.Errorf("prometheus exited before it was ready (%v); its log:\n%s", werr, s.log.String())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = s.Stop()
			return nil, fmt.Errorf("prometheus not ready on %s within %s (last: %v); its log:\n%s", s.URL, opts.ReadyTimeout, err, s.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Log is what the server wrote so far.
func (s *Server) Log() string { return s.log.String() }

// Stop ends the server: SIGTERM, then SIGKILL after 30s.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-s.done:
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				s.stopErr = err
			}
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			s.stopErr = errors.New("prometheus did not stop within 30s of SIGTERM; killed")
		}
	})
	return s.stopErr
}

// Sample is one series of an instant query's result.
type Sample struct {
	Labels map[string]string
	Value  string
}

// Query runs an instant PromQL query through the HTTP API.
func (s *Server) Query(ctx context.Context, expr string) ([]Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: HTTP %d, undecodable body: %w", expr, resp.StatusCode, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: HTTP %d: %s", expr, resp.StatusCode, body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %q, want vector", expr, body.Data.ResultType)
	}
	out := make([]Sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		v, _ := r.Value[1].(string)
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// FreeLoopbackPort returns 127.0.0.1:PORT with a port below 32768 (outside
// Linux's ephemeral range) that nothing listens on now, from [from, to).
func FreeLoopbackPort(from, to int) (string, error) {
	for p := from; p < to && p < 32768; p++ {
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		_ = l.Close()
		return addr, nil
	}
	return "", fmt.Errorf("no free loopback port in [%d, %d)", from, to)
}

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	matchers   = regexp.MustCompile(`\{[^}]*\}`)
	grouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	durations  = regexp.MustCompile(`\[[^\]]*\]`)
)

// promqlWords are functions, aggregations and keywords, never metric names.
var promqlWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`sum min max avg count stddev stdvar topk bottomk quantile count_values group
		rate irate increase delta idelta deriv predict_linear histogram_quantile abs absent absent_over_time
		ceil floor round clamp clamp_min clamp_max changes resets sort sort_desc time timestamp vector scalar
		label_replace label_join avg_over_time min_over_time max_over_time sum_over_time count_over_time
		last_over_time quantile_over_time and or unless bool offset by without on ignoring group_left group_right
		inf nan Inf NaN`) {
		promqlWords[w] = true
	}
}

// MetricNames are the metric (or recording rule) names a PromQL expression
// references, sorted. It strips strings, label matchers, ranges and
// grouping clauses, then keeps the identifiers that are not PromQL's own words.
func MetricNames(expr string) []string {
	e := quoted.ReplaceAllString(expr, " ")
	e = matchers.ReplaceAllString(e, " ")
	e = durations.ReplaceAllString(e, " ")
	e = grouping.ReplaceAllString(e, " ")
	seen := map[string]bool{}
	for _, id := range identifier.FindAllString(e, -1) {
		if !promqlWords[id] {
			seen[id] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

var readmeName = regexp.MustCompile("`((?:sagasuite|messaging)_[a-z0-9_]+)`")

// DocumentedMetrics are the Prometheus names the README's "### Metrics" table
// lists (each backticked sagasuite_… or messaging_… name in its rows).
func DocumentedMetrics(readme []byte) (map[string]bool, error) {
	_, section, ok := bytes.Cut(readme, []byte("\n### Metrics\n"))
	if !ok {
		return nil, errors.New(`README has no "### Metrics" section`)
	}
	names := map[string]bool{}
	for _, line := range strings.Split(string(section), "\n") {
		if strings.HasPrefix(line, "## ") || strings.HasPrefix(line, "### ") {
			break
		}
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " | ")
		for _, m := range readmeName.FindAllStringSubmatch(first, -1) {
			names[m[1]] = true
		}
	}
	if len(names) == 0 {
		return nil, errors.New("README's Metrics table lists no metric")
	}
	return names, nil
}

// Known says whether name is a documented metric, one of a histogram's
// series (_bucket, _count, _sum), Prometheus' own "up", or a recording rule.
func Known(name string, documented, recorded map[string]bool) bool {
	if documented[name] || recorded[name] || name == "up" {
		return true
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && documented[base] {
			return true
		}
	}
	return false
}
