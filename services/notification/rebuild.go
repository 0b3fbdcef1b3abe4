package notification

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters"
	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/ports"
	"github.com/sagasuite/sagasuite/services/notification/migrations"
)

// Model is every row of a notification read model (saga_log_by_order,
// notifications_by_customer, saga_event_times), sorted by key.
type Model = app.Model

// ErrTargetNotEmpty: a rebuild's keyspace already holds rows.
var ErrTargetNotEmpty = errors.New("rebuild target is not empty")

// ErrUnprocessable marks an event the live consumer dead-letters too (an
// unknown schema version, a customer-facing event lacking what its message
// needs): a rebuild skips it and goes on.
var ErrUnprocessable = errors.New("unprocessable event (the live consumer dead-letters it)")

// snapshotStore is a store a rebuild writes and a comparison reads.
type snapshotStore interface {
	app.Store
	Snapshot(ctx context.Context) (app.Model, error)
}

// Rebuilder rebuilds the read model from saga events: each one goes through
// the live consumer's own handler (ports.EventHandler → RecordEvent) in
// replay mode, so the rows are the ones the live service writes, while no
// customer is told again (the Sender is not called) and nothing is published.
type Rebuilder struct {
	handler ports.EventHandler
	clock   *clock.Manual
	store   snapshotStore
	close   func()
}

// OpenRebuild creates cfg.CassandraKeyspace, migrates it and returns a
// Rebuilder writing into it. The keyspace must not exist yet or hold no row
// of the model (ErrTargetNotEmpty): a rebuild starts from nothing.
// logger is the one the (never called) Sender would log to.
func OpenRebuild(ctx context.Context, cfg Config, logger *slog.Logger) (*Rebuilder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: config: %w", Name, err)
	}
	sc := cfg.storeConfig()
	_, hasRows, err := adapters.KeyspaceState(ctx, sc)
	if err != nil {
		return nil, err
	}
	if hasRows {
		return nil, fmt.Errorf("%w: keyspace %s already holds saga log or notification rows; rebuild into a new (or empty) keyspace", ErrTargetNotEmpty, cfg.CassandraKeyspace)
	}
	store, err := adapters.OpenCassandra(ctx, sc, migrations.FS)
	if err != nil {
		return nil, err
	}
	return newRebuilder(store, store.Close, logger), nil
}

// NewMemoryRebuild returns a Rebuilder writing into a fresh in-memory store
// (the dev stack's stand-in for Cassandra).
func NewMemoryRebuild(logger *slog.Logger) *Rebuilder {
	return newRebuilder(adapters.NewNotificationMemoryRepository(), func() {}, logger)
}

func newRebuilder(store snapshotStore, closeStore func(), logger *slog.Logger) *Rebuilder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	clk := clock.NewManual(time.Unix(0, 0))
	// The live service's sender, on purpose: replay mode must be what keeps
	// it silent, and a rebuild that sent would say so in its log.
	a := app.New(store, adapters.LogSender{Logger: logger}, clk).Replaying()
	return &Rebuilder{handler: ports.NewEventHandler(a), clock: clk, store: store, close: closeStore}
}

// Apply handles one saga event as the live consumer would have, with the
// replay clock at recordTime (the Kafka record's timestamp: it stamps the
// delivery mark). An event the live consumer dead-letters gives an error
// wrapping ErrUnprocessable, after which the rebuild may go on; any other
// error means the store failed.
func (r *Rebuilder) Apply(ctx context.Context, env *eventsv1.Envelope, recordTime time.Time) error {
	r.clock.Set(recordTime)
	err := r.handler.Handle(ctx, env)
	if err != nil && bus.IsPermanent(err) {
		return fmt.Errorf("%w: %s %s of order %s: %w", ErrUnprocessable, env.GetType(), env.GetEventId(), env.GetOrderId(), err)
	}
	return err
}

// Model reads back every row the rebuild wrote.
func (r *Rebuilder) Model(ctx context.Context) (Model, error) { return r.store.Snapshot(ctx) }

// Close ends the store's session.
func (r *Rebuilder) Close() { r.close() }

// ReadModel reads every row of the model in cfg.CassandraKeyspace, which
// must exist; nothing is created or migrated (it is the live model).
func ReadModel(ctx context.Context, cfg Config) (Model, error) {
	if err := cfg.Validate(); err != nil {
		return Model{}, fmt.Errorf("%s: config: %w", Name, err)
	}
	store, err := adapters.OpenCassandraExisting(ctx, cfg.storeConfig())
	if err != nil {
		return Model{}, err
	}
	defer store.Close()
	return store.Snapshot(ctx)
}

// Difference is one row that differs between the live and a rebuilt model.
type Difference struct {
	// Table is the model's table.
	Table string
	// Partition names the partition: "order <id>" or "customer <id>".
	Partition string
	// Row is the rest of the key, readable.
	Row string
	// Kind: "missing" (live only), "extra" (rebuilt only) or "different".
	Kind string
	// Columns that differ, for "different".
	Columns []string
}

func (d Difference) String() string {
	s := fmt.Sprintf("%s %s: %s %s", d.Partition, d.Table, d.Kind, d.Row)
	if len(d.Columns) > 0 {
		s += ": " + strings.Join(d.Columns, ", ") + " differ"
	}
	return s
}

// Compare lists the rows that differ between live and rebuilt, by table
// and key. A notification's delivery mark is compared as set or not: its
// time is when the live Sender returned, which no rebuild can know.
func Compare(live, rebuilt Model) []Difference {
	app.SortModel(&live)
	app.SortModel(&rebuilt)
	var out []Difference
	ms := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	out = append(out, diffRows("saga_log_by_order", live.SagaLog, rebuilt.SagaLog,
		func(e app.SagaEvent) (string, string) {
			return "order " + e.OrderID, fmt.Sprintf("at %s event %s", ms(e.OccurredAt), e.EventID)
		},
		func(e app.SagaEvent) string { return string(e.Type) },
		func(a, b app.SagaEvent) []string {
			return changed(map[string]bool{
				"event_type": a.Type != b.Type, "producer": a.Producer != b.Producer,
				"causation_id": a.CausationID != b.CausationID, "customer_id": a.CustomerID != b.CustomerID,
				"envelope": string(a.Envelope) != string(b.Envelope),
			})
		})...)
	out = append(out, diffRows("notifications_by_customer", live.Notifications, rebuilt.Notifications,
		func(n app.StoredNotification) (string, string) {
			return "customer " + n.CustomerID, fmt.Sprintf("at %s notification %s", ms(n.SendTime), n.ID)
		},
		func(n app.StoredNotification) string {
			return fmt.Sprintf("%s, order %s, %s %s", n.Template, n.OrderID, n.EventType, n.EventID)
		},
		func(a, b app.StoredNotification) []string {
			return changed(map[string]bool{
				"order_id": a.OrderID != b.OrderID, "channel": a.Channel != b.Channel, "template": a.Template != b.Template,
				"subject": a.Subject != b.Subject, "body": a.Body != b.Body, "event_type": a.EventType != b.EventType,
				"event_id": a.EventID != b.EventID, "delivered_at (set or not)": a.Delivered != b.Delivered,
			})
		})...)
	out = append(out, diffRows("saga_event_times", live.EventTimes, rebuilt.EventTimes,
		func(e app.EventTime) (string, string) { return "order " + e.OrderID, "event " + e.EventID },
		func(e app.EventTime) string { return "at " + ms(e.OccurredAt) },
		func(a, b app.EventTime) []string {
			return changed(map[string]bool{"occurred_at": !a.OccurredAt.Equal(b.OccurredAt)})
		})...)
	return out
}

// diffRows matches two row lists by primary key: key gives a row's partition
// and the rest of its key, label what to show beside it.
func diffRows[R any](table string, live, rebuilt []R, key func(R) (string, string), label func(R) string, columns func(a, b R) []string) []Difference {
	type k struct{ part, row string }
	index := make(map[k]R, len(rebuilt))
	for _, r := range rebuilt {
		p, row := key(r)
		index[k{p, row}] = r
	}
	var out []Difference
	seen := make(map[k]bool, len(live))
	for _, l := range live {
		p, row := key(l)
		seen[k{p, row}] = true
		r, ok := index[k{p, row}]
		if !ok {
			out = append(out, Difference{Table: table, Partition: p, Row: row + " (" + label(l) + ")", Kind: "missing"})
			continue
		}
		if cols := columns(l, r); len(cols) > 0 {
			out = append(out, Difference{Table: table, Partition: p, Row: row + " (" + label(l) + ")", Kind: "different", Columns: cols})
		}
	}
	for _, r := range rebuilt {
		if p, row := key(r); !seen[k{p, row}] {
			out = append(out, Difference{Table: table, Partition: p, Row: row + " (" + label(r) + ")", Kind: "extra"})
		}
	}
	return out
}

// changed lists the names whose value is true, sorted.
func changed(cols map[string]bool) []string {
	var out []string
	for name, differs := range cols {
		if differs {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
