// Package telemetry sets up OpenTelemetry for a service process: the global
// tracer provider (exporting over OTLP/gRPC when an endpoint is configured),
// the W3C trace-context and baggage propagator that carries a saga's trace
// across gRPC and Kafka, a meter provider exposed through Prometheus, and
// the small HTTP server for /metrics, /healthz and /readyz.
//
// Setup installs process-wide globals: call it once per process (the
// one-process dev stack calls it once for all its services).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
)

// Options configures Setup.
type Options struct {
	// ServiceName becomes the service.name resource attribute. Required.
	ServiceName string
	// Version becomes service.version; optional.
	Version string
	// OTLPEndpoint is the OTLP/gRPC collector, as a URL
	// ("http://collector:4317"; http means no TLS) or host:port (no TLS).
	// Empty: spans are still created and sampled, so trace ids reach logs
	// and message headers, but they are not exported.
	OTLPEndpoint string
	// Registry receives the metrics (plus Go runtime and process
	// collectors); serve it with OpsServer. Required.
	Registry *prometheus.Registry
	// SpanExporter, when set, also receives every ended span synchronously;
	// tests pass tracetest.NewInMemoryExporter().
	SpanExporter sdktrace.SpanExporter
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

	attrs := []resource.Option{
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES, e.g. deployment.environment
		resource.WithAttributes(semconv.ServiceName(opts.ServiceName)),
	}
	if opts.Version != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(opts.Version)))
	}
	res, err := resource.New(ctx, attrs...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: build resource: %w", err)
	}

	tracerOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if opts.OTLPEndpoint != "" {
		exporter, err := otlptracegrpc.New(ctx, otlpEndpoint(opts.OTLPEndpoint)...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter for %s: %w", opts.OTLPEndpoint, err)
		}
		tracerOpts = append(tracerOpts, sdktrace.WithBatcher(exporter))
	}
	if opts.SpanExporter != nil {
		tracerOpts = append(tracerOpts, sdktrace.WithSyncer(opts.SpanExporter))
	}
	// No sampler option: the SDK default (parent-based, always on) applies
	// unless OTEL_TRACES_SAMPLER says otherwise.
	tracerProvider := sdktrace.NewTracerProvider(tracerOpts...)

	metricExporter, err := otelprom.New(otelprom.WithRegisterer(opts.Registry))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("telemetry: prometheus exporter: %w", err), tracerProvider.Shutdown(ctx))
	}
	meterProvider := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(metricExporter))
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := opts.Registry.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return nil, errors.Join(fmt.Errorf("telemetry: register runtime collector: %w", err),
				tracerProvider.Shutdown(ctx), meterProvider.Shutdown(ctx))
		}
	}

	otel.SetTracerProvider(tracerProvider)
	otel.SetMeterProvider(meterProvider)
	otel.SetTextMapPropagator(Propagator())
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("opentelemetry", slog.Any("error", err))
	}))

	return func(ctx context.Context) error {
		if err := errors.Join(tracerProvider.Shutdown(ctx), meterProvider.Shutdown(ctx)); err != nil {
			return fmt.Errorf("telemetry: shutdown: %w", err)
		}
		return nil
	}, nil
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
