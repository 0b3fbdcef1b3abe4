package payment

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/services/payment/internal/adapters/simgateway"
)

// GatewayConfig configures the simulated gateway served over HTTP, read from
// SIMGATEWAY_* variables by cmd/simgateway. Payment replicas reach it through
// PAYMENT_GATEWAY_URL; its ledger is its own (not payment's database).
type GatewayConfig struct {
	// Addr is the listen address (cmd/simgateway; ServeGateway takes a listener).
	Addr string `env:"ADDR" envDefault:"127.0.0.1:8090"`
	// LedgerPath is the ledger's append-only file; "" keeps it in memory
	// (lost when the gateway stops).
	LedgerPath  string        `env:"LEDGER"`
	FailureRate float64       `env:"FAILURE_RATE" envDefault:"0"`
	ErrorRate   float64       `env:"ERROR_RATE" envDefault:"0"`
	TimeoutRate float64       `env:"TIMEOUT_RATE" envDefault:"0"`
	SlowRate    float64       `env:"SLOW_RATE" envDefault:"0"`
	SlowDelay   time.Duration `env:"SLOW_DELAY" envDefault:"1s"`
	FaultSeed   uint64        `env:"FAULT_SEED" envDefault:"1"`
}

func (c GatewayConfig) sim() simgateway.Config {
	return simgateway.Config{FailureRate: c.FailureRate, LedgerPath: c.LedgerPath, Faults: simgateway.Faults{
		ErrorRate: c.ErrorRate, TimeoutRate: c.TimeoutRate, SlowRate: c.SlowRate, SlowDelay: c.SlowDelay, Seed: c.FaultSeed}}
}

// Validate names the variable at fault.
func (c GatewayConfig) Validate() error {
	var problems []error
	for _, r := range []struct {
		key string
		v   float64
	}{{"FAILURE_RATE", c.FailureRate}, {"ERROR_RATE", c.ErrorRate}, {"TIMEOUT_RATE", c.TimeoutRate}, {"SLOW_RATE", c.SlowRate}} {
		if !(r.v >= 0 && r.v <= 1) {
			problems = append(problems, &config.VarError{Key: "SIMGATEWAY_" + r.key, Problem: fmt.Sprintf(": must be between 0 and 1, got %v", r.v)})
		}
	}
	if c.SlowDelay < 0 {
		problems = append(problems, &config.VarError{Key: "SIMGATEWAY_SLOW_DELAY", Problem: fmt.Sprintf(": must not be negative, got %v", c.SlowDelay)})
	}
	return errors.Join(problems...)
}

// ServeGateway serves the simulated gateway on ln until ctx ends (then it
// closes ln and the ledger).
func ServeGateway(ctx context.Context, ln net.Listener, cfg GatewayConfig) error {
	if err := cfg.Validate(); err != nil {
		ln.Close()
		return err
	}
	g, err := simgateway.Open(cfg.sim())
	if err != nil {
		ln.Close()
		return err
	}
	defer g.Close()
	srv := &http.Server{Handler: g.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("simulated gateway: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		srv.Close()
	}
	<-done
	return nil
}

// RunGateway listens on cfg.Addr and serves the gateway until ctx ends.
func RunGateway(ctx context.Context, cfg GatewayConfig) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("simulated gateway: %w", err)
	}
	return ServeGateway(ctx, ln, cfg)
}
