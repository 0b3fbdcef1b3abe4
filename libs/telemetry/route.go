package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"google.golang.org/grpc/stats"
)

type serviceKey struct{}

// ContextWithService marks ctx as running inside service name. In a process
// that hosts several services (Options.Services), spans started under ctx
// carry that service's resource (service.name); elsewhere it changes nothing.
func ContextWithService(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, serviceKey{}, name)
}

// ServiceStatsHandler marks every RPC's context with the service name (see
// ContextWithService); install it before the OpenTelemetry stats handler, so
// the server span is that service's.
func ServiceStatsHandler(name string) stats.Handler { return serviceStats(name) }

type serviceStats string

func (s serviceStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ContextWithService(ctx, string(s))
}
func (serviceStats) HandleRPC(context.Context, stats.RPCStats) {}
func (serviceStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (serviceStats) HandleConn(context.Context, stats.ConnStats) {}

// routingProvider is the global tracer provider of a process hosting several
// services: one SDK provider per service (its own resource), chosen per span
// by the context's service mark, else by the parent span's service, else
// the process's own provider.
type routingProvider struct {
	embedded.TracerProvider
	fallback  *sdktrace.TracerProvider
	byService map[string]*sdktrace.TracerProvider
}

func (p *routingProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	t := &routingTracer{fallback: p.fallback.Tracer(name, opts...), byService: map[string]trace.Tracer{}}
	for svc, tp := range p.byService {
		t.byService[svc] = tp.Tracer(name, opts...)
	}
	return t
}

type routingTracer struct {
	embedded.Tracer
	fallback  trace.Tracer
	byService map[string]trace.Tracer // read-only after construction
}

func (t *routingTracer) Start(ctx context.Context, spanName string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return t.pick(ctx).Start(ctx, spanName, opts...)
}

func (t *routingTracer) pick(ctx context.Context) trace.Tracer {
	if svc, ok := ctx.Value(serviceKey{}).(string); ok {
		if tr, ok := t.byService[svc]; ok {
			return tr
		}
	}
	// A span started in this process (not one extracted from a header)
	// knows its resource: children stay in their parent's service.
	if parent, ok := trace.SpanFromContext(ctx).(sdktrace.ReadOnlySpan); ok {
		if v, ok := parent.Resource().Set().Value(semconv.ServiceNameKey); ok && v.Type() == attribute.STRING {
			if tr, ok := t.byService[v.AsString()]; ok {
				return tr
			}
		}
	}
	return t.fallback
}
