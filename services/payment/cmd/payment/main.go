// Command payment runs the payment service; see services/README.md and
// services/payment/README.md for its PAYMENT_* environment.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/services/payment"
)

func main() {
	cfg, err := config.Load[payment.Config]("PAYMENT")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := payment.Run(ctx, cfg, service.Runtime{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
