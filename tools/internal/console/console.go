// Package console is the browser console's deployable server (tools/cmd/console): it serves the
// embedded bundle (package web, same-origin mode) and forwards the browser protocols — Connect
// and gRPC-Web, unary and server streaming — by path to each service's web listener
// (<P>_WEB_ADDR), so the page talks to one origin and the services need no CORS.
//
// Two path forms reach a service: /api/<service>/<method path> (web.ServicePathPrefix, what
// /config.json tells the page; needed for the operations API, which every service serves under
// the same method path) and the bare /sagasuite.<service>.v1.<Service>/<Method> of a service's
// own API (for clients given the console's origin as every service's URL).
package console

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/web"
)

// Prefix is the console's variable prefix (CONSOLE_ADDR, CONSOLE_ORDER_URL …).
const Prefix = "CONSOLE"

// DefaultPort is the console's documented port: the dev stack serves it on 8090 too.
const DefaultPort = 8090

// Config is the console's environment, read once at start-up by config.Load(Prefix).
type Config struct {
	// Addr is where the console listens (page, /config.json, the forwarded APIs, /healthz).
	Addr string `env:"ADDR" envDefault:":8090"`
	// The five services' web listeners (<P>_WEB_ADDR), e.g. http://order:8091. https needs the
	// issuing CA in UpstreamCAFile unless the system pool trusts it.
	OrderURL        string `env:"ORDER_URL,required"`
	InventoryURL    string `env:"INVENTORY_URL,required"`
	PaymentURL      string `env:"PAYMENT_URL,required"`
	ShippingURL     string `env:"SHIPPING_URL,required"`
	NotificationURL string `env:"NOTIFICATION_URL,required"`
	// UpstreamCAFile is a PEM bundle to verify https upstreams with (e.g. the cluster CA that
	// issued the services' certificates); empty: the system pool.
	UpstreamCAFile string `env:"UPSTREAM_CA_FILE"`
	// ShutdownTimeout bounds the graceful stop; then open streams (WatchOrder) are cut and the
	// page reconnects to another replica.
	ShutdownTimeout time.Duration    `env:"SHUTDOWN_TIMEOUT" envDefault:"15s"`
	LogLevel        config.LogLevel  `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat       config.LogFormat `env:"LOG_FORMAT" envDefault:"json"`
}

// upstreams lists service name, variable and URL in a fixed order.
func (c Config) upstreams() [][3]string {
	return [][3]string{
		{"order", "ORDER_URL", c.OrderURL}, {"inventory", "INVENTORY_URL", c.InventoryURL},
		{"payment", "PAYMENT_URL", c.PaymentURL}, {"shipping", "SHIPPING_URL", c.ShippingURL},
		{"notification", "NOTIFICATION_URL", c.NotificationURL},
	}
}

// Upstreams maps each service URL variable (without the prefix: ORDER_URL …) to the service it
// names; deployment checks (tools/internal/k8scheck, composecheck) read it.
func Upstreams() map[string]string {
	out := map[string]string{}
	for _, up := range (Config{}).upstreams() {
		out[up[1]] = up[0]
	}
	return out
}

// Validate checks what the types cannot; config.Load calls it and names each variable.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &config.VarError{Key: Prefix + "_" + key, Problem: ": " + fmt.Sprintf(format, args...)})
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		bad("ADDR", "%q: want host:port or :port (%v)", c.Addr, err)
	} else if n, err := net.LookupPort("tcp", port); err != nil || n < 0 || n > 65535 {
		bad("ADDR", "%q: bad port", c.Addr)
	}
	for _, up := range c.upstreams() {
		if _, err := upstreamURL(up[2]); err != nil {
			bad(up[1], "%v", err)
		}
	}
	if c.UpstreamCAFile != "" {
		if _, err := caPool(c.UpstreamCAFile); err != nil {
			bad("UPSTREAM_CA_FILE", "%v", err)
		}
	}
	if c.ShutdownTimeout <= 0 {
		bad("SHUTDOWN_TIMEOUT", "%s: want a positive duration", c.ShutdownTimeout)
	}
	return errors.Join(errs...)
}

// upstreamURL accepts a base URL: http or https, a host, nothing after it.
func upstreamURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, fmt.Errorf("%q: want http(s)://host:port of the service's web listener", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: want a base URL without user, path, query or fragment", raw)
	}
	u.Path = ""
	return u, nil
}

func caPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read %q: %v", file, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%q holds no PEM certificate", file)
	}
	return pool, nil
}

// methodPath is a sagasuite method's path, /sagasuite.<package>.v1.<Service>/<Method>: only
// these are forwarded, so nothing else (health, reflection, odd paths) reaches a service
// through the console.
const methodPath = `/sagasuite\.([a-z]+)\.v1\.[A-Za-z][A-Za-z0-9_]*/[A-Za-z][A-Za-z0-9_]*`

var (
	// ownAPIPath is a service's own API at the root: the package names the service.
	ownAPIPath = regexp.MustCompile(`^` + methodPath + `$`)
	// prefixedPath is any sagasuite API of one service under web.ServicePathPrefix.
	prefixedPath = regexp.MustCompile(`^` + regexp.QuoteMeta(web.ServicePathPrefix) + `([a-z]+)(` + methodPath + `)$`)
)

// Handler is everything the console answers: /healthz and /readyz, the five services' API paths
// (forwarded), and the page with its /config.json.
func Handler(cfg Config, logger *slog.Logger) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	transport := &http.Transport{
		Proxy:                 nil, // the services are reached directly, never through HTTP_PROXY
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ForceAttemptHTTP2:     true, // h2 by ALPN to https upstreams; HTTP/1.1 to plaintext ones
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	if cfg.UpstreamCAFile != "" {
		pool, err := caPool(cfg.UpstreamCAFile)
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig.RootCAs = pool
	}
	proxies := map[string]http.Handler{}
	for _, up := range cfg.upstreams() {
		target, _ := upstreamURL(up[2]) // checked by Validate
		name := up[0]
		proxies[name] = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.SetXForwarded()
			},
			Transport: transport,
			// Flush every write at once: WatchOrder's messages must reach the page as they come.
			FlushInterval: -1,
			ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				logger.LogAttrs(r.Context(), slog.LevelWarn, "console: service did not answer",
					slog.String("service", name), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
				writeUnavailable(w, name)
			},
		}
	}
	page, err := web.SameOriginHandler()
	if err != nil {
		return nil, err
	}
	health := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", health)
	mux.HandleFunc("GET /readyz", health) // the image's healthcheck probe asks /readyz
	mux.Handle("/", page)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, web.ServicePathPrefix):
			m := prefixedPath.FindStringSubmatch(r.URL.Path)
			if m == nil || proxies[m[1]] == nil || r.URL.RawPath != "" {
				http.NotFound(w, r)
				return
			}
			// The service sees the method path alone, as from a direct call.
			out := *r
			u := *r.URL
			u.Path = m[2]
			out.URL = &u
			proxies[m[1]].ServeHTTP(w, &out)
		case strings.HasPrefix(r.URL.Path, "/sagasuite."):
			m := ownAPIPath.FindStringSubmatch(r.URL.Path)
			if m == nil || proxies[m[1]] == nil || r.URL.RawPath != "" {
				http.NotFound(w, r)
				return
			}
			proxies[m[1]].ServeHTTP(w, r)
		default:
			mux.ServeHTTP(w, r)
		}
	}), nil
}

// writeUnavailable answers a call whose service is down as a Connect error; Connect and
// gRPC-Web clients both read HTTP 503 as "unavailable", which the page shows as "service does
// not answer".
func writeUnavailable(w http.ResponseWriter, service string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = fmt.Fprintf(w, `{"code":"unavailable","message":"the %s service does not answer"}`, service)
}

// Run serves the console on cfg.Addr until ctx ends, then stops gracefully within
// cfg.ShutdownTimeout. listening, when set, learns the bound address (tests listen on :0).
func Run(ctx context.Context, cfg Config, logger *slog.Logger, listening func(net.Addr)) error {
	h, err := Handler(cfg, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("%s_ADDR=%s: %w", Prefix, cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second, // slowloris; bodies and streams are bounded upstream
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	attrs := []any{slog.String("addr", ln.Addr().String())}
	for _, up := range cfg.upstreams() {
		attrs = append(attrs, slog.String(up[0], up[2]))
	}
	logger.Info("console: listening", attrs...)
	if listening != nil {
		listening(ln.Addr())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("console: %w", err)
	case <-ctx.Done():
	}
	logger.Info("console: shutting down", slog.String("timeout", cfg.ShutdownTimeout.String()))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Streams still open at the deadline are cut; the page reconnects.
		logger.Warn("console: graceful stop timed out, closing open streams", slog.String("error", err.Error()))
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("console: %w", err)
	}
	logger.Info("console: stopped")
	return nil
}
