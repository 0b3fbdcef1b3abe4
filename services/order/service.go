// Package order is the order service: it owns orders, their saga status and
// step history (MySQL), serves the OrderService gRPC API, consumes the saga's
// outcome events, cancels orders whose deadline passes, and emits
// ORDER_CREATED, ORDER_COMPLETED and ORDER_CANCELLED through its outbox.
//
// Run is the one entry: cmd/order and the one-process dev stack both call it.
package order

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/logging"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/adapters"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

// Name is the service's name: its consumer group, inbox consumer and producer.
const Name = "order"

// Config is read from ORDER_* variables (config.Load[Config]("ORDER")).
type Config struct {
	config.Common
	service.KafkaConfig

	// MySQLDSN is the go-sql-driver DSN of the order database.
	MySQLDSN string `env:"MYSQL_DSN,required"`
	// MySQLMaxOpenConns bounds the pool; the dev stack's in-process MySQL
	// needs 1 (it is not safe with concurrent connections).
	MySQLMaxOpenConns int `env:"MYSQL_MAX_OPEN_CONNS" envDefault:"16"`
	// Deadline is how long an order may stay PENDING before it is cancelled
	// with reason TIMEOUT.
	Deadline time.Duration `env:"DEADLINE" envDefault:"30s"`
	// DeadlineScanInterval is how often PENDING orders past their deadline
	// are looked for.
	DeadlineScanInterval time.Duration `env:"DEADLINE_SCAN_INTERVAL" envDefault:"250ms"`
	// WatchPollInterval is how often this replica's one watch poller asks
	// the store for the versions of every order its WatchOrder streams
	// follow (one query per 500 watched orders, none while nothing is
	// watched), reading an order only when another replica changed it.
	// Changes this replica commits are pushed to its streams at once; this
	// bounds how late another replica's change reaches a stream.
	WatchPollInterval time.Duration `env:"WATCH_POLL_INTERVAL" envDefault:"250ms"`
	// MaxPendingOrders bounds the backlog: past it CreateOrder is refused
	// (ResourceExhausted with a retry hint) instead of accepting orders that
	// would wait past their deadline. An accepted order waits about
	// backlog ÷ throughput, so keep it well under throughput × Deadline: 200
	// is about half of that for the ~15 sagas/s a busy 2-core box manages
	// with a 30 s deadline, and still far above what 600 sagas/s at low
	// latency keeps in flight.
	MaxPendingOrders int `env:"MAX_PENDING_ORDERS" envDefault:"200"`
	// PendingCountInterval is how often the backlog is counted in the store
	// (between counts, this process adds the orders it creates).
	PendingCountInterval time.Duration `env:"PENDING_COUNT_INTERVAL" envDefault:"500ms"`
	// OverloadRetryAfter is the retry hint sent with a refusal.
	OverloadRetryAfter time.Duration `env:"OVERLOAD_RETRY_AFTER" envDefault:"1s"`
	// MaxWatchStreamsPerCustomer and MaxWatchStreams bound this replica's
	// open WatchOrder streams per customer and in all; past them a new
	// stream is refused (ResourceExhausted). 0: the defaults (16, 10000).
	MaxWatchStreamsPerCustomer int `env:"MAX_WATCH_STREAMS_PER_CUSTOMER" envDefault:"16"`
	MaxWatchStreams            int `env:"MAX_WATCH_STREAMS" envDefault:"10000"`
	// StuckAfter is how long a PENDING order may go without progress before
	// the sagasuite.saga.stuck gauge counts it (keep it under Deadline to
	// see sagas stall before the deadline cancels them; start-up refuses
	// one that is not). Unset: 10 s, or a third of a deadline under 30 s.
	StuckAfter time.Duration `env:"STUCK_AFTER"`
	// StuckCountInterval is how often the stuck sagas are counted (one
	// index-only query). 0: 5 s.
	StuckCountInterval time.Duration `env:"STUCK_COUNT_INTERVAL" envDefault:"5s"`
}

// EffectiveStuckAfter is StuckAfter, or its default when unset: 10 s, kept
// under the deadline (a third of it) so short deadlines (tests, demos) still
// see sagas stall before they are cancelled.
func (c Config) EffectiveStuckAfter() time.Duration {
	if c.StuckAfter > 0 {
		return c.StuckAfter
	}
	if c.Deadline > 0 {
		return min(app.DefaultStuckAfter, c.Deadline/3)
	}
	return app.DefaultStuckAfter
}

// Validate is called by config.Load after parsing.
func (c Config) Validate() error {
	var errs []error
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("ORDER_%s must be positive, got %s", key, d))
		}
	}
	positive("DEADLINE", c.Deadline)
	positive("DEADLINE_SCAN_INTERVAL", c.DeadlineScanInterval)
	positive("WATCH_POLL_INTERVAL", c.WatchPollInterval)
	positive("PENDING_COUNT_INTERVAL", c.PendingCountInterval)
	positive("OVERLOAD_RETRY_AFTER", c.OverloadRetryAfter)
	// Zero stuck settings mean the defaults (configs built in code, e.g. the dev stack).
	for key, d := range map[string]time.Duration{"STUCK_AFTER": c.StuckAfter, "STUCK_COUNT_INTERVAL": c.StuckCountInterval} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("ORDER_%s must not be negative, got %s", key, d))
		}
	}
	if c.StuckAfter > 0 && c.Deadline > 0 && c.StuckAfter >= c.Deadline {
		// The deadline would cancel every saga before it counted as stuck.
		errs = append(errs, fmt.Errorf("ORDER_STUCK_AFTER (%s) must be shorter than ORDER_DEADLINE (%s)", c.StuckAfter, c.Deadline))
	}
	if c.MySQLMaxOpenConns <= 0 {
		errs = append(errs, fmt.Errorf("ORDER_MYSQL_MAX_OPEN_CONNS must be positive, got %d", c.MySQLMaxOpenConns))
	}
	if c.MaxWatchStreamsPerCustomer < 0 {
		errs = append(errs, fmt.Errorf("ORDER_MAX_WATCH_STREAMS_PER_CUSTOMER must not be negative, got %d", c.MaxWatchStreamsPerCustomer))
	}
	if c.MaxWatchStreams < 0 {
		errs = append(errs, fmt.Errorf("ORDER_MAX_WATCH_STREAMS must not be negative, got %d", c.MaxWatchStreams))
	}
	if c.MaxPendingOrders <= 0 {
		errs = append(errs, fmt.Errorf("ORDER_MAX_PENDING_ORDERS must be positive, got %d", c.MaxPendingOrders))
	}
	return errors.Join(errs...)
}

// Run builds the service (store and migrations, outbox relay, consumers,
// deadline loop, gRPC API) and runs it until ctx ends or a part fails.
func Run(ctx context.Context, cfg Config, rt service.Runtime) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if rt.Logger == nil {
		rt.Logger = logging.New(os.Stderr, cfg.LogLevel, string(cfg.LogFormat)).With("service", Name)
	}
	db, err := sqlstore.Open(ctx, cfg.MySQLDSN, sqlstore.Options{MaxOpenConns: cfg.MySQLMaxOpenConns})
	if err != nil {
		return fmt.Errorf("%s: store: %w", Name, err)
	}
	defer db.Close()
	if err := adapters.Migrate(ctx, db); err != nil {
		return fmt.Errorf("%s: migrate: %w", Name, err)
	}

	producer, err := cfg.KafkaConfig.NewProducer()
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	defer producer.Close()
	relay := outbox.NewRelay(db, producer, outbox.RelayConfig{LockName: Name + "-outbox-relay", Logger: rt.Logger})
	streamLimits, err := app.NewStreamLimits(cmp.Or(cfg.MaxWatchStreamsPerCustomer, app.DefaultMaxWatchStreamsPerCustomer),
		cmp.Or(cfg.MaxWatchStreams, app.DefaultMaxWatchStreams))
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	watchers := app.NewWatchers(streamLimits)
	repo := adapters.NewOrderMySQLRepository(db, Name, rt.Now)
	backlog, err := app.NewBacklog(cfg.MaxPendingOrders, cfg.OverloadRetryAfter, repo.CountPending)
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	// Callbacks are unregistered when Run returns: a stopped service's
	// counters must not keep being observed. (Registered on the global
	// provider before one is set, they are handed to the first provider set
	// later, where a stale observation overwrote a running replica's: the
	// stuck gauge read 0 after another test's service had stopped.)
	refused, unregisterBacklog, err := backlogMetrics(backlog)
	if err != nil {
		return fmt.Errorf("%s: metrics: %w", Name, err)
	}
	defer func() { _ = unregisterBacklog() }()
	sagaEnded, err := sagaMetrics(streamLimits)
	if err != nil {
		return fmt.Errorf("%s: metrics: %w", Name, err)
	}
	stuck := app.NewStuckCounter(cfg.EffectiveStuckAfter(), rt.Now, repo.CountPendingIdleSince)
	unregisterStuck, err := stuckMetrics(stuck)
	if err != nil {
		return fmt.Errorf("%s: metrics: %w", Name, err)
	}
	defer func() { _ = unregisterStuck() }()
	application := app.New(app.Deps{
		Repo:    repo,
		Encode:  ports.Encode,
		Now:     rt.Now,
		Changed: watchers.Publish,
		Emitted: relay.Notify,
		Ended:   sagaEnded,
	}, cfg.Deadline, watchers, backlog)
	api := ports.NewGRPCServer(application, rt.Logger, refused)

	return service.Run(ctx, service.Spec{
		Runtime:  rt,
		Produces: []string{events.TopicOrders},
		Name:     Name,
		Common:   cfg.Common,
		Kafka:    cfg.KafkaConfig,
		Policy:   ports.Policy,
		Register: func(s *grpc.Server) { orderv1.RegisterOrderServiceServer(s, api) },
		Consumers: []service.Consumer{{
			Group:   Name,
			Topics:  []string{events.TopicInventory, events.TopicPayments, events.TopicShipments},
			Handler: ports.EventHandler(application.RecordSagaEvent),
		}},
		Background: map[string]func(context.Context) error{
			"outbox relay":  relay.Run,
			"deadline scan": ports.DeadlineLoop(application.ExpireOrders, cfg.DeadlineScanInterval, rt.Logger),
			"pending count": ports.RefreshLoop("pending orders count", backlog.Refresh, cfg.PendingCountInterval, rt.Logger),
			"stuck count":   ports.RefreshLoop("stuck sagas count", stuck.Refresh, cmp.Or(cfg.StuckCountInterval, 5*time.Second), rt.Logger),
			"watch poll": func(ctx context.Context) error {
				return watchers.RunPolling(ctx, repo, cfg.WatchPollInterval, func(err error) {
					rt.Logger.WarnContext(ctx, "watch poll", "error", err)
				})
			},
		},
		Ready:  db.PingContext,
		Outbox: relay,
	})
}

// backlogMetrics exports the backlog (sagasuite.order.pending, its bound
// sagasuite.order.pending.limit) until unregister is called, and returns what
// counts refusals (sagasuite.order.refused).
func backlogMetrics(b *app.Backlog) (refused func(ctx context.Context), unregister func() error, err error) {
	meter := otel.Meter("github.com/sagasuite/sagasuite/services/order")
	pending, err := meter.Int64ObservableGauge("sagasuite.order.pending",
		metric.WithDescription("orders not yet terminal (the admission estimate)"))
	if err != nil {
		return nil, nil, err
	}
	limit, err := meter.Int64ObservableGauge("sagasuite.order.pending.limit",
		metric.WithDescription("ORDER_MAX_PENDING_ORDERS"))
	if err != nil {
		return nil, nil, err
	}
	counter, err := meter.Int64Counter("sagasuite.order.refused", metric.WithDescription("CreateOrder calls refused for overload"))
	if err != nil {
		return nil, nil, err
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(pending, int64(b.Pending()))
		o.ObserveInt64(limit, int64(b.Limit()))
		return nil
	}, pending, limit)
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context) { counter.Add(ctx, 1) }, reg.Unregister, nil
}

// Metric names of the saga as the order service sees it.
const (
	// MetricSagaDuration is the time from an order's creation to the commit
	// that made it COMPLETED or CANCELLED, once per order.
	MetricSagaDuration = "sagasuite.saga.duration"
	// MetricWatchStreams is this replica's open WatchOrder streams.
	MetricWatchStreams = "sagasuite.order.watch_streams"
	// MetricSagaStuck is the PENDING orders without progress for
	// ORDER_STUCK_AFTER, as last counted.
	MetricSagaStuck = "sagasuite.saga.stuck"
)

// stuckMetrics exports the stuck count (sagasuite.saga.stuck) until
// unregister is called. Every replica counts the same store, so replicas
// sharing a process observe one value.
func stuckMetrics(c *app.StuckCounter) (unregister func() error, err error) {
	meter := otel.Meter("github.com/sagasuite/sagasuite/services/order")
	gauge, err := meter.Int64ObservableGauge(MetricSagaStuck, metric.WithUnit("{saga}"),
		metric.WithDescription("PENDING orders without progress for ORDER_STUCK_AFTER"))
	if err != nil {
		return nil, err
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(gauge, c.Stuck())
		return nil
	}, gauge)
	if err != nil {
		return nil, err
	}
	return reg.Unregister, nil
}

// sagaDurationBuckets span a saga's life: tens of milliseconds when all goes
// well, up to the deadline (30 s by default) and past it under a backlog.
var sagaDurationBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 120, 300}

// sagaMetrics exports the open WatchOrder streams and returns what records
// an order's end (app.Deps.Ended): sagasuite.saga.duration with outcome
// (completed|cancelled) and reason (the cancel reason, "" when completed).
// Only the replica that committed the end records it, so each order counts
// once however many replicas run.
func sagaMetrics(streams *app.StreamLimits) (ended func(ctx context.Context, o *order.Order), err error) {
	meter := otel.Meter("github.com/sagasuite/sagasuite/services/order")
	duration, err := meter.Float64Histogram(MetricSagaDuration, metric.WithUnit("s"),
		metric.WithDescription("from order creation to COMPLETED or CANCELLED, once per order, by outcome and cancel reason"),
		metric.WithExplicitBucketBoundaries(sagaDurationBuckets...))
	if err != nil {
		return nil, err
	}
	// An up-down counter, not an observed gauge: replicas sharing one
	// process (tests, the dev stack) then add up instead of overwriting.
	open, err := meter.Int64UpDownCounter(MetricWatchStreams, metric.WithUnit("{stream}"),
		metric.WithDescription("WatchOrder streams open on this replica"))
	if err != nil {
		return nil, err
	}
	streams.OnChange(func(delta int64) { open.Add(context.Background(), delta) })
	return func(ctx context.Context, o *order.Order) {
		outcome := "completed"
		if o.Status == order.StatusCancelled {
			outcome = "cancelled"
		}
		duration.Record(ctx, o.UpdatedAt.Sub(o.CreatedAt).Seconds(), metric.WithAttributes(
			attribute.String("outcome", outcome), attribute.String("reason", string(o.CancelReason))))
	}, nil
}
