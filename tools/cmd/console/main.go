// Command console serves the sagasuite browser console for a deployment: the embedded page and
// the five services' browser APIs forwarded on one origin (tools/internal/console). Its CONSOLE_*
// environment is described in web/README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/logging"
	"github.com/sagasuite/sagasuite/tools/internal/console"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Environ(), os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run loads the configuration from environ (a bad one stops start-up naming the variable) and
// serves until ctx ends; logs go to stderr as JSON lines, as the services' do.
func run(ctx context.Context, environ []string, stderr io.Writer) error {
	cfg, err := config.LoadFrom[console.Config](console.Prefix, environ)
	if err != nil {
		return err
	}
	logger := logging.New(stderr, cfg.LogLevel.Level(), string(cfg.LogFormat))
	return console.Run(ctx, cfg, logger, nil)
}
