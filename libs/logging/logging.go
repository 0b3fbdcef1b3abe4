// Package logging builds the structured loggers every service uses: log/slog
// in JSON (or text, for a terminal) with the OpenTelemetry trace_id and
// span_id of the context on every record, so a log line leads to its trace
// and a trace to its logs; inside an event handler also the order_id and
// event_id the bus put in the context (ContextWithEvent), so every line a
// handler logs names the saga and the event it belongs to.
package logging

import (
	"context"
	"io"
	"log/slog"
	"maps"

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

// Attribute keys added from the event in the context (ContextWithEvent).
const (
	OrderIDKey = "order_id"
	EventIDKey = "event_id"
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

// TraceHandler adds the context's trace_id and span_id, and order_id and
// event_id when the context carries an event, to each record before handing
// it to the wrapped handler.
type TraceHandler struct {
	next slog.Handler
	// presetKeys are top-level keys already given by WithAttrs: the event's
	// ids are not added again under the same key (no duplicate JSON keys).
	presetKeys map[string]bool
	grouped    bool
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

// Handle adds the trace attributes when ctx holds a valid span context and
// the event's ids when ctx carries them and the line does not name them.
func (h *TraceHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	ev, hasEvent := ctx.Value(eventKey{}).(eventIDs)
	if !sc.IsValid() && !hasEvent {
		return h.next.Handle(ctx, r)
	}
	// Clone: a record's attribute storage may be shared with the caller's copy.
	r = r.Clone()
	if sc.IsValid() {
		r.AddAttrs(
			slog.String(TraceIDKey, sc.TraceID().String()),
			slog.String(SpanIDKey, sc.SpanID().String()),
		)
	}
	if hasEvent {
		var hasOrder, hasEventID bool
		r.Attrs(func(a slog.Attr) bool {
			hasOrder = hasOrder || a.Key == OrderIDKey
			hasEventID = hasEventID || a.Key == EventIDKey
			return true
		})
		if ev.orderID != "" && !hasOrder && !h.presetKeys[OrderIDKey] {
			r.AddAttrs(slog.String(OrderIDKey, ev.orderID))
		}
		if ev.eventID != "" && !hasEventID && !h.presetKeys[EventIDKey] {
			r.AddAttrs(slog.String(EventIDKey, ev.eventID))
		}
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a TraceHandler around next.WithAttrs(attrs).
func (h *TraceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	preset := h.presetKeys
	if !h.grouped {
		for _, a := range attrs {
			if a.Key == OrderIDKey || a.Key == EventIDKey {
				preset = maps.Clone(preset)
				if preset == nil {
					preset = map[string]bool{}
				}
				preset[a.Key] = true
			}
		}
	}
	return &TraceHandler{next: h.next.WithAttrs(attrs), presetKeys: preset, grouped: h.grouped}
}

// WithGroup returns a TraceHandler around next.WithGroup(name).
func (h *TraceHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &TraceHandler{next: h.next.WithGroup(name), presetKeys: h.presetKeys, grouped: true}
}

type eventKey struct{}

type eventIDs struct{ orderID, eventID string }

// ContextWithEvent returns a copy of ctx naming the order (saga) and the
// event being handled; records logged with it get order_id and event_id.
// The bus consumer sets it before it calls a handler.
func ContextWithEvent(ctx context.Context, orderID, eventID string) context.Context {
	return context.WithValue(ctx, eventKey{}, eventIDs{orderID: orderID, eventID: eventID})
}

// EventFromContext returns the ids stored by ContextWithEvent.
func EventFromContext(ctx context.Context) (orderID, eventID string, ok bool) {
	ev, ok := ctx.Value(eventKey{}).(eventIDs)
	return ev.orderID, ev.eventID, ok
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
