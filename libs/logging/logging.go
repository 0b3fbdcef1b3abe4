// Package logging builds the structured loggers every service uses: log/slog
// in JSON (or text, for a terminal) with the OpenTelemetry trace_id and
// span_id of the context on every record, so a log line leads to its trace
// and a trace to its logs.
package logging

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Output formats for New.
const (
	FormatJSON = "json"
	FormatText = "text"
)

// Attribute keys added from the span in the context.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// New returns a logger writing to w at level and above, as JSON unless
// format is FormatText (config validates the value before it gets here).
// Records logged with a context carrying a valid span get trace_id and
// span_id attributes.
func New(w io.Writer, level slog.Leveler, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if format == FormatText {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(NewTraceHandler(h))
}

// TraceHandler adds the context's trace_id and span_id to each record
// before handing it to the wrapped handler.
type TraceHandler struct {
	next slog.Handler
}

// NewTraceHandler wraps next. Attributes are added at the level of the
// record, so after WithGroup they land inside the group.
func NewTraceHandler(next slog.Handler) *TraceHandler {
	return &TraceHandler{next: next}
}

// Enabled reports whether the wrapped handler handles level.
func (h *TraceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds the trace attributes when ctx holds a valid span context.
func (h *TraceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		// Clone: a record's attribute storage may be shared with the caller's copy.
		r = r.Clone()
		r.AddAttrs(
			slog.String(TraceIDKey, sc.TraceID().String()),
			slog.String(SpanIDKey, sc.SpanID().String()),
		)
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a TraceHandler around next.WithAttrs(attrs).
func (h *TraceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &TraceHandler{next: h.next.WithAttrs(attrs)}
}

// WithGroup returns a TraceHandler around next.WithGroup(name).
func (h *TraceHandler) WithGroup(name string) slog.Handler {
	return &TraceHandler{next: h.next.WithGroup(name)}
}

type contextKey struct{}

// NewContext returns a copy of ctx carrying logger, for code that receives
// a context but no logger (e.g. message handlers deep in a call chain).
func NewContext(ctx context.Context, logger *slog.Logger) context.Context {
	return context.WithValue(ctx, contextKey{}, logger)
}

// FromContext returns the logger stored by NewContext, or slog.Default().
func FromContext(ctx context.Context) *slog.Logger {
	if logger, ok := ctx.Value(contextKey{}).(*slog.Logger); ok && logger != nil {
		return logger
	}
	return slog.Default()
}
