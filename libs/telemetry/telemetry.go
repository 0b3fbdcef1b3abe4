// Package telemetry sets up OpenTelemetry for a service process: the global
// tracer provider (exporters chosen by the standard OTEL_TRACES_EXPORTER,
// OTEL_METRICS_EXPORTER and OTEL_EXPORTER_OTLP_* variables, see
// exporters.go),
// the W3C trace-context and baggage propagator that carries a saga's trace
// across gRPC and Kafka, a meter provider exposed through Prometheus, and
// the small HTTP server for /metrics, /healthz and /readyz.
//
// Setup installs process-wide globals: call it once per process (the
// one-process dev stack calls it once for all its services, naming them in
// Options.Services so each keeps its own service.name).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Options configures Setup.
type Options struct {
	// ServiceName becomes the service.name resource attribute. Required.
	ServiceName string
	// Version becomes service.version; optional.
	Version string
	// OTLPEndpoint is the OTLP collector, as a URL
	// ("http://collector:4317"; http means no TLS) or host:port (no TLS);
	// it overrides OTEL_EXPORTER_OTLP_ENDPOINT. With OTEL_TRACES_EXPORTER
	// unset, traces go over OTLP when an endpoint is set here or in the
	// environment; otherwise spans are still created and sampled, so trace
	// ids reach logs and message headers, but they are not exported.
	OTLPEndpoint string
	// Registry receives the metrics (plus Go runtime and process
	// collectors); serve it with OpsServer. Required.
	Registry *prometheus.Registry
	// SpanExporter, when set, also receives every ended span synchronously;
	// tests pass tracetest.NewInMemoryExporter().
	SpanExporter sdktrace.SpanExporter
	// Services, for a process hosting several services, gets each its own
	// tracer provider with service.name set to it; a span belongs to the
	// service ContextWithService marked its context with (or its parent's).
	// ServiceName remains the name of anything else.
	Services []string
	// ConsoleOutput receives the console exporters' output. Nil: os.Stderr,
	// never stdout, which belongs to the program.
	ConsoleOutput io.Writer
	// Logger receives errors OpenTelemetry reports in the background (e.g.
	// a collector that cannot be reached). Nil: slog.Default().
	Logger *slog.Logger
}

// Setup installs the global tracer provider, propagator and meter provider.
// The returned shutdown flushes pending spans and stops the providers; call
// it with a bounded context on the way out.
func Setup(ctx context.Context, opts Options) (shutdown func(context.Context) error, err error) {
	if opts.ServiceName == "" {
		return nil, errors.New("telemetry: Options.ServiceName is required")
	}
	if opts.Registry == nil {
		return nil, errors.New("telemetry: Options.Registry is required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}

	console := opts.ConsoleOutput
	if console == nil {
		console = os.Stderr
	}
	// The exporter variables first: a bad value stops start-up, naming it.
	if err := checkLogsExporter(); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	spanExps, err := spanExporters(ctx, opts, console)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	readers, err := metricReaders(ctx, console)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("telemetry: %w", err), shutdownSpanExporters(ctx, spanExps))
	}
	var processors []sdktrace.SpanProcessor
	for _, exp := range spanExps {
		processors = append(processors, sdktrace.NewBatchSpanProcessor(exp))
	}
	if opts.SpanExporter != nil {
		processors = append(processors, sdktrace.NewSimpleSpanProcessor(opts.SpanExporter))
	}
	var shutdowns []func(context.Context) error
	undo := func(err error) error {
		for _, r := range readers {
			err = errors.Join(err, r.Shutdown(ctx))
		}
		for _, s := range shutdowns {
			err = errors.Join(err, s(ctx))
		}
		return err
	}

	res, err := newResource(ctx, opts.ServiceName, opts.Version)
	if err != nil {
		return nil, undo(err)
	}
	// No sampler option: the SDK default (parent-based, always on) applies
	// unless OTEL_TRACES_SAMPLER says otherwise. The providers share the
	// processors (their Shutdown runs once).
	newProvider := func(res *resource.Resource) *sdktrace.TracerProvider {
		tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
		for _, p := range processors {
			tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(p))
		}
		tp := sdktrace.NewTracerProvider(tpOpts...)
		shutdowns = append(shutdowns, tp.Shutdown)
		return tp
	}
	tracerProvider := newProvider(res)
	var globalTracerProvider trace.TracerProvider = tracerProvider
	if len(opts.Services) > 0 {
		router := &routingProvider{fallback: tracerProvider, byService: map[string]*sdktrace.TracerProvider{}}
		for _, svc := range opts.Services {
			svcRes, err := newResource(ctx, svc, opts.Version)
			if err != nil {
				return nil, undo(err)
			}
			router.byService[svc] = newProvider(svcRes)
		}
		globalTracerProvider = router
	}

	metricExporter, err := otelprom.New(otelprom.WithRegisterer(opts.Registry))
	if err != nil {
		return nil, undo(fmt.Errorf("telemetry: prometheus exporter: %w", err))
	}
	meterOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(metricExporter)}
	for _, r := range readers {
		meterOpts = append(meterOpts, sdkmetric.WithReader(r))
	}
	meterProvider := sdkmetric.NewMeterProvider(meterOpts...)
	readers = nil // the meter provider shuts them down now
	shutdowns = append(shutdowns, meterProvider.Shutdown)
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := opts.Registry.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return nil, undo(fmt.Errorf("telemetry: register runtime collector: %w", err))
		}
	}

	otel.SetTracerProvider(globalTracerProvider)
	otel.SetMeterProvider(meterProvider)
	otel.SetTextMapPropagator(Propagator())
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("opentelemetry", slog.Any("error", err))
	}))

	return func(ctx context.Context) error {
		var err error
		for _, s := range shutdowns {
			err = errors.Join(err, s(ctx))
		}
		if err != nil {
			return fmt.Errorf("telemetry: shutdown: %w", err)
		}
		return nil
	}, nil
}

func newResource(ctx context.Context, serviceName, version string) (*resource.Resource, error) {
	attrs := []resource.Option{
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES (e.g. deployment.environment) and OTEL_SERVICE_NAME
		resource.WithAttributes(semconv.ServiceName(serviceName)),
	}
	if version != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(version)))
	}
	res, err := resource.New(ctx, attrs...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: build resource for %s: %w", serviceName, err)
	}
	return res, nil
}

func shutdownSpanExporters(ctx context.Context, exps []sdktrace.SpanExporter) error {
	var err error
	for _, e := range exps {
		err = errors.Join(err, e.Shutdown(ctx))
	}
	return err
}

// Propagator is the propagator Setup installs: W3C traceparent/tracestate
// plus baggage. Code that carries context over Kafka headers may use
// otel.GetTextMapPropagator() or this directly.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// otlpEndpoint turns the OTEL_EXPORTER_OTLP_ENDPOINT forms into exporter
// options: a URL keeps its scheme's meaning, a bare host:port is plaintext
// (an in-cluster collector).
func otlpEndpoint(endpoint string) []otlptracegrpc.Option {
	if strings.Contains(endpoint, "://") {
		return []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(endpoint)}
	}
	return []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure()}
}
