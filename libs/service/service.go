// Package service is the runtime every sagasuite service starts through, so
// all five have the same shape: telemetry, saga topics, a gRPC server with
// health and validation (serving, besides the service's own API, the
// operations API of ops_api.go), an ops HTTP server (/metrics, /healthz, /readyz),
// Kafka consumers and background loops (outbox relay, timers), all run under
// one owner and stopped together, gracefully, when the context ends or any
// part fails.
package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/grpcserver"
	"github.com/sagasuite/sagasuite/libs/logging"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/libs/telemetry"
)

// KafkaConfig is the Kafka part of every service's config (embed it; the
// variables get the service's prefix, e.g. ORDER_KAFKA_BROKERS).
type KafkaConfig struct {
	Brokers []string `env:"KAFKA_BROKERS,required" envSeparator:","`
	// TopicPrefix namespaces topics and consumer groups, so several suites
	// (parallel tests, tenants) can share one cluster.
	TopicPrefix       string `env:"KAFKA_TOPIC_PREFIX"`
	Partitions        int    `env:"KAFKA_PARTITIONS" envDefault:"3"`
	ReplicationFactor int    `env:"KAFKA_REPLICATION_FACTOR" envDefault:"1"`
	KafkaSecurity
	// EnvPrefix is the variables' prefix ("ORDER_"), for error messages;
	// ValidateSection fills it, a config built in code may leave it empty.
	EnvPrefix string
}

// ValidateSection checks the settings at start-up (config.Load calls it),
// so a bad value stops the service naming its variable.
func (k *KafkaConfig) ValidateSection(prefix string) error {
	k.EnvPrefix = prefix
	var errs []error
	if k.Partitions <= 0 {
		errs = append(errs, &config.VarError{Key: prefix + "KAFKA_PARTITIONS", Problem: fmt.Sprintf(": must be positive, got %d", k.Partitions)})
	}
	if k.ReplicationFactor <= 0 {
		errs = append(errs, &config.VarError{Key: prefix + "KAFKA_REPLICATION_FACTOR", Problem: fmt.Sprintf(": must be positive, got %d", k.ReplicationFactor)})
	}
	if _, err := k.KafkaSecurity.Build(prefix); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Security is how the service's Kafka clients connect.
func (k KafkaConfig) Security() (bus.Security, error) { return k.KafkaSecurity.Build(k.EnvPrefix) }

// Topic is the full name of a saga topic (events.TopicOrders …) under the prefix.
func (k KafkaConfig) Topic(base string) string { return k.TopicPrefix + base }

// NewProducer returns a producer that publishes under the prefix.
func (k KafkaConfig) NewProducer() (*bus.Producer, error) {
	sec, err := k.Security()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return bus.NewProducer(k.Brokers, bus.WithTopicPrefix(k.TopicPrefix), bus.WithSecurity(sec)), nil
}

// Consumer is one consumer group of a service.
type Consumer struct {
	// Group is the group name without prefix, e.g. "inventory". Its dead
	// letters go to "<prefix><group>.dlq". Handlers use it as the inbox name.
	Group string
	// Topics are base topic names (events.TopicOrders …).
	Topics  []string
	Handler bus.Handler
}

// Runtime is what a caller may inject into a service besides its config:
// the one-process dev stack and tests use it; a service's main leaves it zero.
type Runtime struct {
	// Clock is the time handlers use (nil: clock.System).
	Clock clock.Clock
	// Logger defaults to one built from the config (level, format) on stderr.
	Logger *slog.Logger
	// SharedTelemetry: the caller has installed the global OpenTelemetry
	// providers already (the one-process dev stack runs five services).
	SharedTelemetry bool
	// Registry receives metrics when SharedTelemetry is set; otherwise the
	// runtime makes one.
	Registry *prometheus.Registry
	// OnListening, if set, is told the gRPC and ops addresses once both
	// listen (tests and the dev stack use ":0"-style addresses).
	OnListening func(grpcAddr, opsAddr net.Addr)
	// OnWebListening, if set, is told the gRPC-Web/Connect address before
	// OnListening, when the service has a web listener (Common.WebAddr).
	OnWebListening func(webAddr net.Addr)
	// Verifier checks bearer tokens instead of one built from
	// Common.Auth (tests and the dev stack hold their own signing key).
	Verifier grpcserver.TokenVerifier
}

// Now is the runtime's clock, the system clock by default.
func (r Runtime) Now() time.Time {
	if r.Clock == nil {
		return clock.System{}.Now()
	}
	return r.Clock.Now()
}

// Spec is everything a service hands the runtime.
type Spec struct {
	Runtime

	Name   string // "order", "inventory", …
	Common config.Common
	Kafka  KafkaConfig
	// Produces are the base topics the service publishes to (its own, e.g.
	// events.TopicOrders): it creates those at start-up and no others, so
	// per-service ACLs can forbid creating or writing anyone else's. The
	// topics its consumers read are waited for until their owners create
	// them (bus.WaitForTopics).
	Produces []string
	// Register adds the gRPC API implementations.
	Register func(*grpc.Server)
	// Policy says which roles may call each registered method (the
	// service's ports package declares it); a method without one stops
	// start-up.
	Policy    grpcserver.Policy
	Consumers []Consumer
	// OwnGroups are consumer groups the service runs itself instead of
	// through Consumers (shipping's leased consumer, a background loop): the
	// operations API reports and acts on them like the others. Only Group
	// and Topics are read.
	OwnGroups []Consumer
	// Background loops (outbox relay, deadline timer …); each runs until ctx
	// ends. A loop that returns an error stops the service.
	Background map[string]func(ctx context.Context) error
	// Ready reports whether the service's own dependencies (stores) answer;
	// nil means always ready. Consumers' state is added by the runtime.
	Ready func(ctx context.Context) error
	// Outbox, when set, is the service's outbox relay: its admin API is
	// served on the ops port (OutboxAdminHandler) and its status is part
	// of readiness.
	Outbox outbox.Admin
}

// Run runs the service until ctx ends or a part fails, then shuts it down.
func Run(ctx context.Context, spec Spec) (err error) {
	// Spans started under ctx (consumers, relay, loops) are this service's,
	// also when several services share one process (the dev stack).
	ctx = telemetry.ContextWithService(ctx, spec.Name)
	// First, so a misconfigured binary stops at once, naming the variable.
	verifier := spec.Verifier
	if verifier == nil {
		v, err := newVerifier(ctx, spec)
		if err != nil {
			return fmt.Errorf("%s: %w", spec.Name, err)
		}
		verifier = v
	}
	logger := spec.Logger
	if logger == nil {
		logger = logging.New(os.Stderr, spec.Common.LogLevel, string(spec.Common.LogFormat)).With("service", spec.Name)
	}
	registry := spec.Registry
	if registry == nil {
		registry = prometheus.NewRegistry()
	}
	if !spec.SharedTelemetry {
		serviceName := spec.Common.ServiceName // OTEL_SERVICE_NAME, else the service's own name
		if serviceName == "" {
			serviceName = spec.Name
		}
		shutdown, err := telemetry.Setup(ctx, telemetry.Options{
			ServiceName: serviceName, OTLPEndpoint: spec.Common.OTLPEndpoint, Registry: registry, Logger: logger,
		})
		if err != nil {
			return fmt.Errorf("%s: %w", spec.Name, err) // Setup's errors begin "telemetry:"
		}
		defer func() {
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			err = errors.Join(err, shutdown(flushCtx))
		}()
	}

	security, err := spec.Kafka.Security()
	if err != nil {
		return fmt.Errorf("%s: kafka: %w", spec.Name, err)
	}
	if err := ensureOwnTopics(ctx, spec, security, logger); err != nil {
		return err
	}
	tlsConfig, err := serverTLS(spec.Common)
	if err != nil {
		return fmt.Errorf("%s: %w", spec.Name, err)
	}

	consumers := make([]*bus.Consumer, 0, len(spec.Consumers))
	for _, c := range spec.Consumers {
		full := make([]string, len(c.Topics))
		for i, t := range c.Topics {
			full[i] = spec.Kafka.Topic(t)
		}
		consumer, err := bus.NewConsumer(bus.ConsumerConfig{
			Brokers: spec.Kafka.Brokers, Group: spec.Kafka.TopicPrefix + c.Group, Topics: full,
			ReplicationFactor: spec.Kafka.ReplicationFactor, StrictTopics: true, Logger: logger, Security: security,
		}, c.Handler)
		if err != nil {
			return fmt.Errorf("%s: consumer %s: %w", spec.Name, c.Group, err)
		}
		consumers = append(consumers, consumer)
	}

	var web *grpcserver.Web
	if spec.Common.WebAddr != "" {
		web = &grpcserver.Web{Addr: spec.Common.WebAddr, AllowedOrigins: spec.Common.WebAllowedOrigins, TLS: tlsConfig.web}
	}
	// Every service also serves the operations API (ops_api.go) for its own
	// groups and outbox, under OpsPolicy.
	opsAPI := newOpsAPI(spec, security)
	register := func(s *grpc.Server) {
		if spec.Register != nil {
			spec.Register(s)
		}
		opsAPI.register(s)
	}
	server, err := grpcserver.New(grpcserver.Options{
		Addr: spec.Common.GRPCAddr, Logger: logger, ServiceName: spec.Name, Register: register,
		ShutdownTimeout: spec.Common.ShutdownTimeout,
		Auth:            &grpcserver.Auth{Verifier: verifier, Policy: withOpsPolicy(spec.Policy)},
		Reflection:      spec.Common.GRPCReflection, Limits: grpcLimits(spec.Common.GRPCLimits),
		TLS: tlsConfig.grpc, Web: web,
	})
	if err != nil {
		return fmt.Errorf("%s: grpc: %w", spec.Name, err)
	}
	ready := func() error {
		for i, c := range consumers {
			if !c.Ready() {
				return fmt.Errorf("consumer %s has not joined its group", spec.Consumers[i].Group)
			}
		}
		if spec.Outbox != nil {
			if err := spec.Outbox.RelayStatus().Err(); err != nil {
				return err
			}
		}
		if spec.Ready != nil {
			checkCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			return spec.Ready(checkCtx)
		}
		return nil
	}
	ops := telemetry.OpsServer(spec.Common.OpsAddr, registry, ready, telemetry.WithPprof(spec.Common.PprofEnabled))
	if mux, ok := ops.Handler.(*http.ServeMux); ok && spec.Outbox != nil {
		admin := http.NewServeMux()
		registerOutboxAdmin(admin, spec.Name, spec.Outbox)
		mux.Handle(AdminPathPrefix, requireAdmin(verifier, logger, admin))
	}
	opsListener, err := net.Listen("tcp", spec.Common.OpsAddr)
	if err != nil {
		server.Close()
		return fmt.Errorf("%s: ops server: %w", spec.Name, err)
	}
	if tlsConfig.ops != nil {
		opsListener = tls.NewListener(opsListener, tlsConfig.ops)
	}
	if spec.OnWebListening != nil && server.WebAddr() != nil {
		spec.OnWebListening(server.WebAddr())
	}
	if spec.OnListening != nil {
		spec.OnListening(server.Addr(), opsListener.Addr())
	}
	started := []any{"grpc", server.Addr().String(), "ops", opsListener.Addr().String()}
	if server.WebAddr() != nil {
		started = append(started, "web", server.WebAddr().String())
	}
	logger.InfoContext(ctx, "service started", started...)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return server.Serve(gctx) })
	g.Go(func() error { reportReadiness(gctx, server, ready, logger); return nil })
	g.Go(func() error { return telemetry.ServeListener(gctx, ops, opsListener, spec.Common.ShutdownTimeout) })
	for i, c := range consumers {
		name := spec.Consumers[i].Group
		g.Go(func() error {
			if err := c.Run(gctx); err != nil {
				return fmt.Errorf("consumer %s: %w", name, err)
			}
			return nil
		})
	}
	for name, loop := range spec.Background {
		g.Go(func() error {
			if err := loop(gctx); err != nil && gctx.Err() == nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	err = g.Wait()
	logger.Info("service stopped", "error", err)
	return err
}

// readinessRefresh is how often the gRPC readiness status is recomputed: a
// probe sees a change within it (Kubernetes probes every few seconds).
const readinessRefresh = time.Second

// reportReadiness keeps grpcserver.ReadinessService in step with ready — the
// same check /readyz answers — until ctx ends, logging each change once.
func reportReadiness(ctx context.Context, server *grpcserver.Server, ready func() error, logger *slog.Logger) {
	ticker := time.NewTicker(readinessRefresh)
	defer ticker.Stop()
	wasReady := false
	for {
		err := ready()
		if ctx.Err() != nil {
			return
		}
		server.SetReady(err == nil)
		switch {
		case err == nil && !wasReady:
			logger.InfoContext(ctx, "ready")
		case err != nil && wasReady:
			logger.WarnContext(ctx, "not ready", "error", err)
		}
		wasReady = err == nil
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
