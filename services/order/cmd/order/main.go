// Command order runs the order service; configuration comes from ORDER_*
// environment variables (see services/README.md).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/services/order"
)

func main() {
	cfg, err := config.Load[order.Config]("ORDER")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := order.Run(ctx, cfg, service.Runtime{}); err != nil {
		stop()
		fmt.Fprintln(os.Stderr, "order:", err)
		os.Exit(1)
	}
}
