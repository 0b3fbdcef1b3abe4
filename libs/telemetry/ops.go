package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OpsServer returns the operations HTTP server for addr:
//
//	/metrics  Prometheus exposition of gatherer
//	/healthz  liveness: 200 while the process can answer at all
//	/readyz   readiness: 200 when ready returns nil, else 503 with its error
//
// A nil ready means always ready. The caller runs it (see Serve). Options
// add more (WithPprof).
func OpsServer(addr string, gatherer prometheus.Gatherer, ready func() error, opts ...OpsOption) *http.Server {
	var o opsOptions
	for _, opt := range opts {
		opt(&o)
	}
	mux := http.NewServeMux()
	if o.pprof {
		// Registered on this mux only: importing net/http/pprof also fills
		// http.DefaultServeMux, which no server here serves.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index) // the named profiles: heap, goroutine, allocs, block, mutex …
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
				return
			}
		}
		writeText(w, http.StatusOK, "ok")
	})
	return &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second, // probes and scrapes are tiny; slow clients are not
	}
}

// OpsOption adds to the ops server.
type OpsOption func(*opsOptions)

type opsOptions struct{ pprof bool }

// WithPprof serves net/http/pprof under /debug/pprof/ when enabled
// (config.Common.PprofEnabled); CPU profiles and traces run as long as
// their ?seconds= asks, so the server sets no write timeout.
func WithPprof(enabled bool) OpsOption {
	return func(o *opsOptions) { o.pprof = enabled }
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body + "\n")) // the client went away; nothing to do
}

// Serve listens on srv.Addr and serves until ctx is done, then shuts the
// server down, waiting at most shutdownTimeout for open requests.
func Serve(ctx context.Context, srv *http.Server, shutdownTimeout time.Duration) error {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("telemetry: listen %s: %w", srv.Addr, err)
	}
	return ServeListener(ctx, srv, ln, shutdownTimeout)
}

// ServeListener is Serve on a listener the caller opened (to learn a ":0"
// port before serving).
func ServeListener(ctx context.Context, srv *http.Server, ln net.Listener, shutdownTimeout time.Duration) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("telemetry: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	if shutdownErr != nil {
		_ = srv.Close() // the grace period is over: drop what is still open
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("telemetry: serve %s: %w", ln.Addr(), err)
	}
	if shutdownErr != nil {
		return fmt.Errorf("telemetry: shut down %s: %w", ln.Addr(), shutdownErr)
	}
	return nil
}
