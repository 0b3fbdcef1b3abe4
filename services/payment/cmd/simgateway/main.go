// Command simgateway serves the simulated payment gateway over HTTP, with
// its ledger in the file SIMGATEWAY_LEDGER, for payment replicas that reach it
// through PAYMENT_GATEWAY_URL. Variables: services/payment/README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/services/payment"
)

func main() {
	cfg, err := config.Load[payment.GatewayConfig]("SIMGATEWAY")
	if err != nil {
		fmt.Fprintln(os.Stderr, "simgateway:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := payment.RunGateway(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "simgateway:", err)
		os.Exit(1)
	}
}
