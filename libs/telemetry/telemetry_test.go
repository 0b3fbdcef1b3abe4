package telemetry_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/sagasuite/sagasuite/libs/telemetry"
)

func setup(t *testing.T, opts telemetry.Options) {
	t.Helper()
	if opts.ServiceName == "" {
		opts.ServiceName = "order"
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	shutdown, err := telemetry.Setup(context.Background(), opts)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound for a hang
		defer cancel()
		if err := shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

func TestSetupRecordsSpans(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	setup(t, telemetry.Options{ServiceName: "order", Version: "1.2.3", SpanExporter: exporter})

	_, span := otel.Tracer("test").Start(context.Background(), "CreateOrder")
	span.End()

	spans := exporter.GetSpans()
	if len(spans) != 1 || spans[0].Name != "CreateOrder" {
		t.Fatalf("recorded spans = %v, want one CreateOrder", spans)
	}
	attrs := map[string]string{}
	for _, kv := range spans[0].Resource.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["service.name"] != "order" || attrs["service.version"] != "1.2.3" {
		t.Errorf("resource = %v, want service.name=order service.version=1.2.3", attrs)
	}
}

func TestSetupWithoutExporterStillMakesTraceIDs(t *testing.T) {
	setup(t, telemetry.Options{})
	_, span := otel.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	if sc := span.SpanContext(); !sc.IsValid() || !sc.IsSampled() {
		t.Fatalf("span context %+v: want a valid, sampled one", sc)
	}
}

func TestSetupRejectsMissingOptions(t *testing.T) {
	for name, opts := range map[string]telemetry.Options{
		"no service name": {Registry: prometheus.NewRegistry()},
		"no registry":     {ServiceName: "order"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := telemetry.Setup(context.Background(), opts); err == nil {
				t.Fatal("Setup succeeded, want an error")
			}
		})
	}
}

func TestPropagatorRoundTrip(t *testing.T) {
	setup(t, telemetry.Options{})
	member, err := baggage.NewMember("customer_id", "c-42")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := otel.Tracer("test").Start(baggage.ContextWithBaggage(context.Background(), bag), "publish")
	defer span.End()

	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	if carrier.Get("traceparent") == "" || carrier.Get("baggage") == "" {
		t.Fatalf("carrier %v lacks traceparent or baggage", carrier)
	}

	received := otel.GetTextMapPropagator().Extract(context.Background(), carrier)
	got := trace.SpanContextFromContext(received)
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || !got.IsRemote() {
		t.Errorf("extracted %+v, want the remote form of %+v", got, span.SpanContext())
	}
	if v := baggage.FromContext(received).Member("customer_id").Value(); v != "c-42" {
		t.Errorf("baggage customer_id = %q, want c-42", v)
	}
}

// collector is a minimal OTLP/gRPC trace receiver.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []string
	names []string
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				c.names = append(c.names, kv.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, s.GetName())
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func TestSetupExportsOverOTLP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	recv := &collector{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, recv)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	shutdown, err := telemetry.Setup(context.Background(), telemetry.Options{
		ServiceName:  "payment",
		OTLPEndpoint: "http://" + ln.Addr().String(),
		Registry:     prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "ChargePayment")
	span.End()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound for a hang
	defer cancel()
	if err := shutdown(ctx); err != nil { // flushes the batch
		t.Fatalf("shutdown: %v", err)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.spans) != 1 || recv.spans[0] != "ChargePayment" || len(recv.names) != 1 || recv.names[0] != "payment" {
		t.Fatalf("collector got spans %v from services %v, want ChargePayment from payment", recv.spans, recv.names)
	}
}
