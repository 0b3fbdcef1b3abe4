// Command ferretdb-local serves the MongoDB wire protocol on a loopback address with
// FerretDB v1 embedded, backed by PostgreSQL (-postgresql-url, the local real stack,
// started by deploy/local/infra.sh) or by SQLite files (-sqlite-dir, the dev stack).
//
// It logs at Error level only (FerretDB logs every error reply at WARN) and shuts down
// cleanly on SIGTERM or SIGINT.
//
// With -ping URI it serves nothing: it runs listDatabases against a running server (which
// makes FerretDB query its backend) and exits 0 when that works; infra.sh uses it as the
// readiness check.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb-local:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:17017", "TCP address to serve the MongoDB wire protocol on")
	pgURL := flag.String("postgresql-url", "", "PostgreSQL URL (handler \"postgresql\"), e.g. postgres://user:pass@127.0.0.1:15432/ferretdb")
	sqliteDir := flag.String("sqlite-dir", "", "directory for SQLite files (handler \"sqlite\"); created when missing")
	logLevel := flag.String("log-level", "error", "log level: debug, info, warn or error")
	ping := flag.String("ping", "", "check a running server at this MongoDB URI (listDatabases) and exit")
	flag.Parse()

	if flag.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %q", flag.Args())
	}
	if *ping != "" {
		return pingServer(*ping)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfg := ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listen},
		Logger:   logger,
	}

	switch {
	case *pgURL != "" && *sqliteDir != "":
		return errors.New("give either -postgresql-url or -sqlite-dir, not both")
	case *pgURL != "":
		cfg.Handler = "postgresql"
		cfg.PostgreSQLURL = *pgURL
	case *sqliteDir != "":
		dir, err := filepath.Abs(*sqliteDir)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		cfg.Handler = "sqlite"
		// FerretDB wants a file: URI naming a directory, ending in "/".
		// (Never ?mode=memory: it hangs on the first update.)
		cfg.SQLiteURL = "file:" + strings.TrimSuffix(dir, "/") + "/"
	default:
		return errors.New("give -postgresql-url or -sqlite-dir")
	}

	f, err := ferretdb.New(&cfg)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	fmt.Fprintf(os.Stderr, "ferretdb-local: %s handler, listening on %s\n", cfg.Handler, *listen)

	select {
	case err := <-done:
		// Run returns only after ctx ends, or when the listener failed.
		if ctx.Err() == nil {
			return fmt.Errorf("stopped unexpectedly: %v", err)
		}
		return err
	case <-ctx.Done():
	}

	stop() // a second signal now kills the process the default way
	select {
	case err := <-done:
		fmt.Fprintln(os.Stderr, "ferretdb-local: stopped")
		return err
	case <-time.After(10 * time.Second):
		return errors.New("shutdown timed out after 10s")
	}
}

// pingServer runs listDatabases on uri within 5 seconds.
func pingServer(uri string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(3 * time.Second).SetTimeout(5 * time.Second))
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	if _, err := client.ListDatabaseNames(ctx, bson.D{}); err != nil {
		return fmt.Errorf("listDatabases on %s: %w", uri, err)
	}
	return nil
}
