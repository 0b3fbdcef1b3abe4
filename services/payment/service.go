// Package payment is the payment service: one payment per order in MySQL,
// charged through a gateway with the order id as idempotency key when
// inventory has reserved the stock (STOCK_RESERVED), and refunded exactly once
// when the order is cancelled or its shipment fails. An order cancelled
// before any charge leaves a tombstone, so a late STOCK_RESERVED charges
// nothing. Every gateway call is bracketed by a committed intent and a
// recorded outcome; a sweeper finishes intents a crash left behind. The
// gateway is a simulator, in-process or reached by URL (ServeGateway serves
// it; see internal/adapters/simgateway and README.md).
package payment

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"google.golang.org/grpc"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/logging"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	"github.com/sagasuite/sagasuite/services/payment/internal/adapters"
	"github.com/sagasuite/sagasuite/services/payment/internal/adapters/simgateway"
	"github.com/sagasuite/sagasuite/services/payment/internal/app"
	"github.com/sagasuite/sagasuite/services/payment/internal/ports"
)

// Name is the service's name: its consumer group, inbox consumer and producer.
const Name = "payment"

// Config is read from PAYMENT_* variables (config.Load[Config]("PAYMENT")).
type Config struct {
	config.Common
	service.KafkaConfig

	// MySQLDSN is the go-sql-driver DSN of the payment database.
	MySQLDSN string `env:"MYSQL_DSN,required"`
	// MySQLMaxOpenConns bounds the pool; the dev stack's in-process MySQL
	// needs 1 (it is not safe with concurrent connections).
	MySQLMaxOpenConns int `env:"MYSQL_MAX_OPEN_CONNS" envDefault:"16"`
	// GatewayFailureRate is the share of orders, in [0, 1], the simulated
	// gateway declines on top of its fixed rules (chosen by a hash of the
	// order id, so a replay decides the same).
	GatewayFailureRate float64 `env:"GATEWAY_FAILURE_RATE" envDefault:"0"`
	// GatewayURL is the gateway's base URL (a simulated gateway served by
	// ServeGateway, shared by every replica); "" runs one in-process, whose
	// ledger lives and dies with this process.
	GatewayURL string `env:"GATEWAY_URL"`
	// GatewayTimeout bounds one gateway call; after it the outcome is unknown.
	GatewayTimeout time.Duration `env:"GATEWAY_TIMEOUT" envDefault:"5s"`
	// The in-process gateway's faults (a gateway at GatewayURL has its own):
	// shares of calls answered 5xx, timed out with an unknown outcome, or
	// delayed by GatewaySlowDelay; drawn from GatewayFaultSeed.
	GatewayErrorRate   float64       `env:"GATEWAY_ERROR_RATE" envDefault:"0"`
	GatewayTimeoutRate float64       `env:"GATEWAY_TIMEOUT_RATE" envDefault:"0"`
	GatewaySlowRate    float64       `env:"GATEWAY_SLOW_RATE" envDefault:"0"`
	GatewaySlowDelay   time.Duration `env:"GATEWAY_SLOW_DELAY" envDefault:"1s"`
	GatewayFaultSeed   uint64        `env:"GATEWAY_FAULT_SEED" envDefault:"1"`
	// IntentLease is how long a replica has to finish a gateway step it
	// started before any replica's sweeper takes it over.
	IntentLease time.Duration `env:"INTENT_LEASE" envDefault:"30s"`
	// SweepInterval is how often each replica looks for expired intents.
	SweepInterval time.Duration `env:"SWEEP_INTERVAL" envDefault:"1s"`
}

// Hooks are test seams of RunWith.
type Hooks struct {
	// AfterGatewayCall runs after each gateway call (op "charge" or
	// "refund") and before its answer is recorded; an error stands for the
	// process dying there: the answer is dropped, the intent stays pending.
	AfterGatewayCall func(ctx context.Context, op, orderID string) error
}

// Validate is called by config.Load after parsing.
func (c Config) Validate() error {
	var problems []error
	bad := func(key, format string, args ...any) {
		problems = append(problems, &config.VarError{Key: key, Problem: ": " + fmt.Sprintf(format, args...)})
	}
	rate := func(key string, v float64) {
		if math.IsNaN(v) || v < 0 || v > 1 {
			bad(key, "must be between 0 and 1, got %v", v)
		}
	}
	rate("PAYMENT_GATEWAY_FAILURE_RATE", c.GatewayFailureRate)
	rate("PAYMENT_GATEWAY_ERROR_RATE", c.GatewayErrorRate)
	rate("PAYMENT_GATEWAY_TIMEOUT_RATE", c.GatewayTimeoutRate)
	rate("PAYMENT_GATEWAY_SLOW_RATE", c.GatewaySlowRate)
	if c.GatewaySlowDelay < 0 {
		bad("PAYMENT_GATEWAY_SLOW_DELAY", "must not be negative, got %v", c.GatewaySlowDelay)
	}
	if c.GatewayURL != "" {
		if _, err := simgateway.ParseURL(c.GatewayURL); err != nil {
			bad("PAYMENT_GATEWAY_URL", "must be http(s)://host[:port], got %q", c.GatewayURL)
		}
		if c.GatewayFailureRate != 0 || c.GatewayErrorRate != 0 || c.GatewayTimeoutRate != 0 || c.GatewaySlowRate != 0 {
			bad("PAYMENT_GATEWAY_URL", "a remote gateway has its own failure settings; unset PAYMENT_GATEWAY_*_RATE")
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"PAYMENT_GATEWAY_TIMEOUT", c.GatewayTimeout}, {"PAYMENT_INTENT_LEASE", c.IntentLease}, {"PAYMENT_SWEEP_INTERVAL", c.SweepInterval}} {
		if d.v < 0 {
			bad(d.key, "must be positive (0: the default), got %v", d.v)
		}
	}
	if c.MySQLMaxOpenConns <= 0 {
		bad("PAYMENT_MYSQL_MAX_OPEN_CONNS", "must be positive, got %d", c.MySQLMaxOpenConns)
	}
	return errors.Join(problems...)
}

// withDefaults fills what a Config built in Go (the dev stack, tests) leaves
// zero with the defaults config.Load would give.
func (c Config) withDefaults() Config {
	if c.GatewayTimeout == 0 {
		c.GatewayTimeout = 5 * time.Second
	}
	if c.GatewaySlowDelay == 0 {
		c.GatewaySlowDelay = time.Second
	}
	if c.IntentLease == 0 {
		c.IntentLease = 30 * time.Second
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = time.Second
	}
	return c
}

// gateway builds the configured gateway and what closes it.
func (c Config) gateway() (app.Gateway, func() error, error) {
	if c.GatewayURL != "" {
		client, err := simgateway.NewClient(c.GatewayURL, c.GatewayTimeout)
		if err != nil {
			return nil, nil, err
		}
		return client, client.Close, nil
	}
	g, err := simgateway.Open(simgateway.Config{FailureRate: c.GatewayFailureRate, Faults: simgateway.Faults{
		ErrorRate: c.GatewayErrorRate, TimeoutRate: c.GatewayTimeoutRate, SlowRate: c.GatewaySlowRate,
		SlowDelay: c.GatewaySlowDelay, Seed: c.GatewayFaultSeed}})
	if err != nil {
		return nil, nil, err
	}
	return g, g.Close, nil
}

// Run builds the service (store and migrations, simulated gateway, outbox
// relay, consumer, gRPC API) and runs it until ctx ends or a part fails.
func Run(ctx context.Context, cfg Config, rt service.Runtime) error {
	return RunWith(ctx, cfg, rt, Hooks{})
}

// RunWith is Run with test hooks.
func RunWith(ctx context.Context, cfg Config, rt service.Runtime, hooks Hooks) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if rt.Logger == nil {
		rt.Logger = logging.New(os.Stderr, cfg.LogLevel, string(cfg.LogFormat)).With("service", Name)
	}
	gateway, closeGateway, err := cfg.gateway()
	if err != nil {
		return fmt.Errorf("%s: gateway: %w", Name, err)
	}
	defer closeGateway()
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
	application := app.New(app.Deps{
		Repo:             adapters.NewPaymentMySQLRepository(db, Name, rt.Now).WithLease(cfg.IntentLease),
		Gateway:          gateway,
		Encode:           ports.Encode,
		Now:              rt.Now,
		Changed:          relay.Notify,
		Logger:           rt.Logger,
		AfterGatewayCall: hooks.AfterGatewayCall,
	})
	api := ports.NewGRPCServer(application)

	return service.Run(ctx, service.Spec{
		Runtime:  rt,
		Produces: []string{events.TopicPayments},
		Name:     Name,
		Common:   cfg.Common,
		Kafka:    cfg.KafkaConfig,
		Policy:   ports.Policy,
		Register: func(s *grpc.Server) { paymentv1.RegisterPaymentServiceServer(s, api) },
		Consumers: []service.Consumer{{
			Group:   Name,
			Topics:  []string{events.TopicInventory, events.TopicOrders, events.TopicShipments},
			Handler: ports.EventHandler(application),
		}},
		Background: map[string]func(context.Context) error{
			"outbox relay": relay.Run,
			"intent sweeper": func(ctx context.Context) error {
				return application.Sweeper.Run(ctx, cfg.SweepInterval)
			},
		},
		Ready:  db.PingContext,
		Outbox: relay,
	})
}
