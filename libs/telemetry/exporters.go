package telemetry

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The standard variables that choose exporters (the conventions of
// go.opentelemetry.io/contrib/exporters/autoexport). Each holds one name or
// a comma-separated list.
const (
	EnvTracesExporter  = "OTEL_TRACES_EXPORTER"
	EnvMetricsExporter = "OTEL_METRICS_EXPORTER"
	EnvLogsExporter    = "OTEL_LOGS_EXPORTER"
)

// Exporter names.
const (
	ExporterOTLP       = "otlp"
	ExporterConsole    = "console"
	ExporterNone       = "none"
	ExporterPrometheus = "prometheus" // metrics only: the ops port's /metrics, always served
)

// exporterNames reads env and checks each name against allowed; an unknown
// one is an error naming the variable, so a typo stops start-up instead of
// silently exporting nothing.
func exporterNames(env string, allowed ...string) ([]string, error) {
	raw := strings.TrimSpace(os.Getenv(env))
	if raw == "" {
		return nil, nil
	}
	var names []string
	for name := range strings.SplitSeq(raw, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		ok := false
		for _, a := range allowed {
			ok = ok || name == a
		}
		if !ok {
			return nil, fmt.Errorf("%s=%q: unknown exporter %q, want one or more of %s (comma-separated)",
				env, raw, name, strings.Join(allowed, ", "))
		}
		if name != ExporterNone {
			names = append(names, name)
		}
	}
	return names, nil
}

// otlpEndpointSet reports whether an OTLP endpoint for signal ("TRACES",
// "METRICS", "LOGS") is configured in the environment.
func otlpEndpointSet(signal string) bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// otlpProtocol is OTEL_EXPORTER_OTLP_<signal>_PROTOCOL, else
// OTEL_EXPORTER_OTLP_PROTOCOL, else grpc: this project's collectors have
// always been reached over gRPC on 4317 (the specification's default is
// http/protobuf; set the variable for that).
func otlpProtocol(signal string) (string, error) {
	for _, env := range []string{"OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		switch v := os.Getenv(env); v {
		case "":
			continue
		case "grpc", "http/protobuf":
			return v, nil
		default:
			return "", fmt.Errorf("%s=%q: want grpc or http/protobuf", env, v)
		}
	}
	return "grpc", nil
}

// spanExporters builds the exporters OTEL_TRACES_EXPORTER names. Unset: OTLP
// when an endpoint is configured (explicitly or by OTEL_EXPORTER_OTLP_*),
// else none — spans are still created, so trace ids reach logs and headers.
func spanExporters(ctx context.Context, opts Options, console io.Writer) ([]sdktrace.SpanExporter, error) {
	names, err := exporterNames(EnvTracesExporter, ExporterOTLP, ExporterConsole, ExporterNone)
	if err != nil {
		return nil, err
	}
	if os.Getenv(EnvTracesExporter) == "" && (opts.OTLPEndpoint != "" || otlpEndpointSet("TRACES")) {
		names = []string{ExporterOTLP}
	}
	var exporters []sdktrace.SpanExporter
	for _, name := range names {
		var exp sdktrace.SpanExporter
		switch name {
		case ExporterConsole:
			// One JSON object per span per line, on the console writer
			// (stderr): stdout stays the program's own.
			exp, err = stdouttrace.New(stdouttrace.WithWriter(console))
		case ExporterOTLP:
			exp, err = otlpSpanExporter(ctx, opts.OTLPEndpoint)
		}
		if err != nil {
			return nil, fmt.Errorf("%s exporter %s: %w", EnvTracesExporter, name, err)
		}
		exporters = append(exporters, exp)
	}
	return exporters, nil
}

// otlpSpanExporter: the other OTEL_EXPORTER_OTLP_* settings (headers,
// timeout, certificates, a traces-specific endpoint) are read by the
// exporter itself.
func otlpSpanExporter(ctx context.Context, endpoint string) (sdktrace.SpanExporter, error) {
	protocol, err := otlpProtocol("TRACES")
	if err != nil {
		return nil, err
	}
	if protocol == "http/protobuf" {
		var httpOpts []otlptracehttp.Option
		if endpoint != "" {
			httpOpts = append(httpOpts, otlptracehttp.WithEndpointURL(withScheme(endpoint)))
		}
		return otlptracehttp.New(ctx, httpOpts...)
	}
	var grpcOpts []otlptracegrpc.Option
	if endpoint != "" {
		grpcOpts = otlpEndpoint(endpoint)
	}
	return otlptracegrpc.New(ctx, grpcOpts...)
}

// metricReaders builds the readers OTEL_METRICS_EXPORTER names, in addition
// to Prometheus on the ops port, which is always there ("prometheus" names
// it, so it adds nothing). Unset: none.
func metricReaders(ctx context.Context, console io.Writer) ([]sdkmetric.Reader, error) {
	names, err := exporterNames(EnvMetricsExporter, ExporterOTLP, ExporterConsole, ExporterPrometheus, ExporterNone)
	if err != nil {
		return nil, err
	}
	var readers []sdkmetric.Reader
	for _, name := range names {
		var exp sdkmetric.Exporter
		switch name {
		case ExporterPrometheus:
			continue
		case ExporterConsole:
			exp, err = stdoutmetric.New(stdoutmetric.WithWriter(console))
		case ExporterOTLP:
			var protocol string
			if protocol, err = otlpProtocol("METRICS"); err == nil {
				if protocol == "http/protobuf" {
					exp, err = otlpmetrichttp.New(ctx)
				} else {
					exp, err = otlpmetricgrpc.New(ctx)
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s exporter %s: %w", EnvMetricsExporter, name, err)
		}
		// The interval is OTEL_METRIC_EXPORT_INTERVAL (default 60s), read by the SDK.
		readers = append(readers, sdkmetric.NewPeriodicReader(exp))
	}
	return readers, nil
}

// checkLogsExporter: the services' logs are slog JSON on stderr and no OTel
// log pipeline exists yet, so only "none" is accepted; otlp and console say
// so instead of being silently ignored.
func checkLogsExporter() error {
	names, err := exporterNames(EnvLogsExporter, ExporterOTLP, ExporterConsole, ExporterNone)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("%s=%q: log export is not supported yet (logs are JSON lines on stderr); use none or unset it",
			EnvLogsExporter, os.Getenv(EnvLogsExporter))
	}
	return nil
}

// withScheme makes a bare host:port a plaintext URL, as otlpEndpoint does
// for gRPC.
func withScheme(endpoint string) string {
	if strings.Contains(endpoint, "://") {
		return endpoint
	}
	return "http://" + endpoint
}
