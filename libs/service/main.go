package service

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sagasuite/sagasuite/libs/config"
)

// Main is the whole main function of a service: load its config from the
// environment under prefix (a bad or missing variable stops start-up naming
// it), run until SIGINT or SIGTERM, and exit 1 on any error.
func Main[C any](prefix string, run func(context.Context, C, Runtime) error) {
	cfg, err := config.Load[C](prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, cfg, Runtime{})
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", prefix, err)
		os.Exit(1)
	}
}
