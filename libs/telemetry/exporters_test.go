package telemetry

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"google.golang.org/grpc/stats"
)

// clearExporterEnv unsets every variable that chooses exporters, so a
// developer's own environment does not change the outcome.
func clearExporterEnv(t *testing.T) {
	for _, env := range []string{EnvTracesExporter, EnvMetricsExporter, EnvLogsExporter,
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_SERVICE_NAME"} {
		t.Setenv(env, "") // restores the old value after the test
	}
}

func setup(t *testing.T, opts Options) func() {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	shutdown, err := Setup(context.Background(), opts)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	done := false
	stop := func() {
		if !done {
			done = true
			if err := shutdown(context.Background()); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestSpanExporterSelection(t *testing.T) {
	cases := []struct {
		name      string
		env       map[string]string
		endpoint  string
		exporters int
	}{
		{"unset, no endpoint: none", nil, "", 0},
		{"unset, endpoint in env: otlp", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, "", 1},
		{"unset, traces endpoint in env: otlp", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "", 1},
		{"unset, endpoint option: otlp", nil, "127.0.0.1:4317", 1},
		{"none beats an endpoint", map[string]string{EnvTracesExporter: "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, "", 0},
		{"console", map[string]string{EnvTracesExporter: "console"}, "", 1},
		{"otlp over http", map[string]string{EnvTracesExporter: "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "", 1},
		{"a list", map[string]string{EnvTracesExporter: "otlp, Console"}, "", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clearExporterEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			exps, err := spanExporters(context.Background(), Options{OTLPEndpoint: c.endpoint}, &bytes.Buffer{})
			if err != nil {
				t.Fatalf("spanExporters: %v", err)
			}
			if len(exps) != c.exporters {
				t.Errorf("%d exporters (%T), want %d", len(exps), exps, c.exporters)
			}
			if err := shutdownSpanExporters(context.Background(), exps); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
}

// A bad value stops Setup with an error naming the variable and the value.
func TestBadExporterVariableStopsSetup(t *testing.T) {
	cases := []struct{ env, value, want string }{
		{EnvTracesExporter, "bogus", `OTEL_TRACES_EXPORTER="bogus": unknown exporter "bogus"`},
		{EnvTracesExporter, "console,jaeger", `OTEL_TRACES_EXPORTER="console,jaeger": unknown exporter "jaeger"`},
		{EnvMetricsExporter, "bogus", `OTEL_METRICS_EXPORTER="bogus": unknown exporter "bogus"`},
		{EnvLogsExporter, "bogus", `OTEL_LOGS_EXPORTER="bogus": unknown exporter "bogus"`},
		{EnvLogsExporter, "console", `OTEL_LOGS_EXPORTER="console": log export is not supported yet`},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", `OTEL_EXPORTER_OTLP_PROTOCOL="thrift": want grpc or http/protobuf`},
	}
	for _, c := range cases {
		t.Run(c.env+"="+c.value, func(t *testing.T) {
			clearExporterEnv(t)
			t.Setenv(c.env, c.value)
			if c.env == "OTEL_EXPORTER_OTLP_PROTOCOL" {
				t.Setenv(EnvTracesExporter, "otlp")
			}
			shutdown, err := Setup(context.Background(), Options{ServiceName: "order", Registry: prometheus.NewRegistry()})
			if err == nil {
				_ = shutdown(context.Background())
				t.Fatal("Setup accepted it")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
}

// console: each ended span is a JSON line on ConsoleOutput with its
// service.name; metrics console exporter adds to Prometheus, not instead.
func TestConsoleExporters(t *testing.T) {
	clearExporterEnv(t)
	t.Setenv(EnvTracesExporter, "console")
	t.Setenv(EnvMetricsExporter, "console")
	var console bytes.Buffer
	reg := prometheus.NewRegistry()
	stop := setup(t, Options{ServiceName: "payment", Registry: reg, ConsoleOutput: &console})

	_, span := otel.Tracer("test").Start(context.Background(), "charge card")
	span.End()
	counter, err := otel.Meter("test").Int64Counter("charges")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(context.Background(), 2)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var inPrometheus bool
	for _, f := range families {
		inPrometheus = inPrometheus || f.GetName() == "charges_total"
	}
	if !inPrometheus {
		t.Error("charges_total is not in the Prometheus registry")
	}
	stop() // flushes the batch processor and the periodic reader

	out := console.String()
	for _, want := range []string{`"Name":"charge card"`, `"Key":"service.name","Value":{"Type":"STRING","Value":"payment"}`, `"Name":"charges"`} {
		if !strings.Contains(out, want) {
			t.Errorf("console output lacks %s:\n%.2000s", want, out)
		}
	}
}

// With Services, each span carries the resource of the service its context
// is marked with, or of its parent span; anything else is the process's.
func TestServicesKeepTheirOwnServiceName(t *testing.T) {
	clearExporterEnv(t)
	spans := tracetest.NewInMemoryExporter()
	setup(t, Options{ServiceName: "sagasuite-dev", Services: []string{"order", "payment"}, SpanExporter: spans})
	tracer := otel.Tracer("test")

	ctx, parent := tracer.Start(ContextWithService(context.Background(), "payment"), "payment handler")
	_, child := tracer.Start(context.WithoutCancel(ctx), "payment child") // no mark of its own: its parent's service
	child.End()
	parent.End()

	// A remote parent (as extracted from a Kafka header) carries no
	// resource: the mark decides.
	carrier := propagation.MapCarrier{}
	Propagator().Inject(ctx, carrier)
	remote := Propagator().Extract(ContextWithService(context.Background(), "order"), carrier)
	_, consumer := tracer.Start(remote, "order consumer")
	consumer.End()

	tagged := ServiceStatsHandler("order").TagRPC(context.Background(), &stats.RPCTagInfo{})
	_, rpc := tracer.Start(tagged, "order rpc")
	rpc.End()
	_, other := tracer.Start(context.Background(), "unmarked")
	other.End()

	want := map[string]string{"payment handler": "payment", "payment child": "payment", "order consumer": "order",
		"order rpc": "order", "unmarked": "sagasuite-dev"}
	got := map[string]string{}
	for _, s := range spans.GetSpans() {
		v, _ := s.Resource.Set().Value(semconv.ServiceNameKey)
		got[s.Name] = v.AsString()
		if s.Name == "order consumer" && s.Parent.TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("order consumer is not in the payment handler's trace")
		}
	}
	for name, svc := range want {
		if got[name] != svc {
			t.Errorf("span %q: service.name %q, want %q", name, got[name], svc)
		}
	}
}
