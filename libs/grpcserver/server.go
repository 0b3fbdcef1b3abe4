// Package grpcserver starts a service's gRPC API the same way everywhere:
// health checking (grpc.health.v1, for Kubernetes probes: the server and its
// services for liveness, ReadinessService for readiness), reflection (for
// grpcurl, when enabled), bounded per-caller cost (limits.go), TLS when
// configured, OpenTelemetry tracing, and an interceptor chain that turns a
// panic into codes.Internal, logs every call and rejects requests that break
// their protovalidate rules before a handler sees them. Serve stops
// gracefully, within a bound, when its context ends.
package grpcserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"buf.build/go/protovalidate"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/sagasuite/sagasuite/libs/telemetry"
)

// DefaultShutdownTimeout bounds a graceful stop when Options leaves it zero.
const DefaultShutdownTimeout = 15 * time.Second

// Options configures New.
type Options struct {
	// Addr is the TCP address to listen on, e.g. ":9090" or "127.0.0.1:0".
	Addr string
	// Logger receives one line per call and every recovered panic.
	// Nil: slog.Default().
	Logger *slog.Logger
	// ServiceName (e.g. "order") is added to the server's log lines.
	ServiceName string
	// Register adds the service implementations to the server.
	Register func(*grpc.Server)
	// ShutdownTimeout bounds the graceful stop; then open calls are cut.
	// Zero: DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// ServerOptions are appended to the server's own (e.g. keepalive).
	ServerOptions []grpc.ServerOption
	// Auth, when set, requires a verified bearer token on every method but
	// health and reflection, and admits each caller by its Policy (auth.go).
	Auth *Auth
	// Reflection serves the reflection API (grpcurl); off unless asked for.
	Reflection bool
	// Limits bound each caller's cost (limits.go); zero fields: defaults.
	Limits Limits
	// TLS, when set, makes the server speak TLS only (e.g. a
	// tlsfiles.Reloader's ServerConfig, so renewed certificates apply).
	TLS *tls.Config
	// Web, when set, also serves gRPC-Web and Connect for browsers on its
	// own listener, through the same handlers and interceptors (web.go).
	Web *Web
}

// ReadinessService is the health-service name whose status says whether this
// instance can do its work (its stores answer, its consumers have joined):
// NOT_SERVING until the owner reports ready with SetReady. The server ("") and
// the registered services stay SERVING until shutdown, so a liveness probe on
// them never restarts a pod for an outage of something else; a readiness probe
// (Kubernetes `grpc: {service: sagasuite.Readiness}`) asks this name.
const ReadinessService = "sagasuite.Readiness"

// Server is a listening gRPC server; run it with Serve.
type Server struct {
	grpc            *grpc.Server
	health          *health.Server
	listener        net.Listener
	web             *http.Server // nil without a browser listener
	webListener     net.Listener
	logger          *slog.Logger
	services        []string
	shutdownTimeout time.Duration

	// drain ends when shutdown starts, telling long-lived streams to finish.
	drain     context.Context
	stopDrain context.CancelFunc
	serveOnce sync.Once
}

// New builds the server, registers the services and starts listening (so
// Addr is known before Serve); every registered service reports SERVING.
func New(opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if opts.ServiceName != "" {
		logger = logger.With(slog.String("service", opts.ServiceName))
	}
	validator, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("grpcserver: protovalidate: %w", err)
	}
	timeout := opts.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}

	authUnary, authStream, err := authInterceptors(opts.Auth, logger)
	if err != nil {
		return nil, err
	}

	drain, stopDrain := context.WithCancel(context.Background())
	s := &Server{
		health:          health.NewServer(),
		logger:          logger,
		shutdownTimeout: timeout,
		drain:           drain,
		stopDrain:       stopDrain,
	}
	serverOpts := []grpc.ServerOption{
		// Tracing wraps everything, so even a panic or a rejected request is
		// a span; health probes would only be noise.
		// The service mark first: in a one-process stack it picks the
		// server span's service.name.
		grpc.StatsHandler(telemetry.ServiceStatsHandler(opts.ServiceName)),
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithFilter(filters.Not(filters.HealthCheck())))),
		grpc.ChainUnaryInterceptor(
			unaryRecovery(logger),
			unaryLogging(logger),
			authUnary,
			unaryValidation(validator),
		),
		grpc.ChainStreamInterceptor(
			streamRecovery(logger),
			streamLogging(logger),
			authStream,
			streamValidation(validator),
			s.streamDrain,
		),
	}
	serverOpts = append(serverOpts, opts.Limits.serverOptions(opts.TLS)...)
	s.grpc = grpc.NewServer(append(serverOpts, opts.ServerOptions...)...)

	healthpb.RegisterHealthServer(s.grpc, s.health)
	if opts.Reflection {
		reflection.Register(s.grpc)
	}
	if opts.Register != nil {
		opts.Register(s.grpc)
	}
	if opts.Auth != nil {
		if err := checkPolicy(opts.Auth.Policy, registeredMethods(s.grpc)); err != nil {
			stopDrain()
			return nil, fmt.Errorf("grpcserver: %w", err)
		}
	}
	for name := range s.grpc.GetServiceInfo() {
		if name == healthpb.Health_ServiceDesc.ServiceName || isReflection(name) {
			continue
		}
		s.services = append(s.services, name)
	}
	s.SetServing()
	s.SetReady(false)

	lis, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		stopDrain()
		return nil, fmt.Errorf("grpcserver: listen on %q: %w", opts.Addr, err)
	}
	s.listener = lis
	if opts.Web != nil {
		if err := s.listenWeb(*opts.Web, opts.Limits); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func isReflection(service string) bool {
	return service == "grpc.reflection.v1.ServerReflection" || service == "grpc.reflection.v1alpha.ServerReflection"
}

// Addr is the address the server listens on (the real port when Addr was ":0").
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// SetServing reports every registered service, and the server as a whole
// (service ""), as SERVING: ready for traffic.
func (s *Server) SetServing() { s.setStatus(healthpb.HealthCheckResponse_SERVING) }

// SetNotServing reports every service as NOT_SERVING, e.g. while a store or
// the broker is unreachable, so load balancers route around this instance.
func (s *Server) SetNotServing() { s.setStatus(healthpb.HealthCheckResponse_NOT_SERVING) }

// SetReady reports ReadinessService as SERVING (ready) or NOT_SERVING. After
// shutdown began it changes nothing: everything stays NOT_SERVING.
func (s *Server) SetReady(ready bool) {
	status := healthpb.HealthCheckResponse_NOT_SERVING
	if ready {
		status = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus(ReadinessService, status)
}

func (s *Server) setStatus(status healthpb.HealthCheckResponse_ServingStatus) {
	s.health.SetServingStatus("", status)
	for _, name := range s.services {
		s.health.SetServingStatus(name, status)
	}
}

// Serve answers calls until ctx ends, then stops: health turns NOT_SERVING,
// long-lived streams are told to end, and calls in flight get up to the
// shutdown timeout to finish before they are cut. It returns nil after such
// a stop, or the error that ended serving early. Call it once.
func (s *Server) Serve(ctx context.Context) error {
	err := errors.New("grpcserver: Serve called twice")
	s.serveOnce.Do(func() { err = s.serve(ctx) })
	return err
}

func (s *Server) serve(ctx context.Context) error {
	served := make(chan error, 1)
	go func() { served <- s.grpc.Serve(s.listener) }()
	s.logger.InfoContext(ctx, "gRPC server listening", slog.String("addr", s.Addr().String()))
	webServed := make(chan error, 1)
	if s.web != nil {
		go func() { webServed <- s.serveWeb() }()
		s.logger.InfoContext(ctx, "gRPC-Web/Connect listening", slog.String("addr", s.WebAddr().String()))
	}

	select {
	case err := <-served:
		s.stopDrain()
		if s.web != nil {
			s.web.Close()
		}
		return fmt.Errorf("grpcserver: serve on %s: %w", s.Addr(), err)
	case err := <-webServed:
		s.stopDrain()
		s.grpc.Stop()
		<-served
		return err
	case <-ctx.Done():
	}

	s.health.Shutdown() // NOT_SERVING for all, and stays so
	s.stopDrain()
	deadline := time.Now().Add(s.shutdownTimeout)
	if s.web != nil {
		s.shutdownWeb(deadline)
		if err := <-webServed; err != nil {
			s.logger.WarnContext(ctx, "web listener", slog.Any("error", err))
		}
	}
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-stopped:
		s.logger.InfoContext(ctx, "gRPC server stopped")
	case <-timer.C:
		s.logger.WarnContext(ctx, "gRPC graceful stop timed out; cutting open calls",
			slog.Duration("timeout", s.shutdownTimeout))
		s.grpc.Stop()
		<-stopped
	}
	// After GracefulStop or Stop, grpc.Server.Serve returns nil, or
	// ErrServerStopped when ctx ended before it got going.
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("grpcserver: serve on %s: %w", s.Addr(), err)
	}
	return nil
}

// Close stops a server that will not be served (e.g. start-up failed
// after New): it releases the listener at once.
func (s *Server) Close() error {
	s.stopDrain()
	s.grpc.Stop()
	var errs []error
	if err := s.listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, fmt.Errorf("grpcserver: close listener: %w", err))
	}
	if s.webListener != nil {
		if err := s.webListener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("grpcserver: close web listener: %w", err))
		}
	}
	return errors.Join(errs...)
}
