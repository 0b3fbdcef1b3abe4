package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	gmssql "github.com/dolthub/go-mysql-server/sql"
	"github.com/sirupsen/logrus"
	"github.com/twmb/franz-go/pkg/kfake"
)

// The in-process servers. Each start function returns the address clients
// use and a stop function that returns once the server's goroutines and
// listeners are gone.

// startKafka runs a one-broker kfake cluster on addr (a loopback host:port;
// port 0 picks a free one). kafka-go reaches it over TCP like a real broker.
func startKafka(addr string) (broker string, stop func(), err error) {
	port, err := loopbackPort(addr)
	if err != nil {
		return "", nil, fmt.Errorf("kafka address: %w", err)
	}
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.AllowAutoTopicCreation())
	if err != nil {
		return "", nil, fmt.Errorf("in-process kafka on %s: %w", addr, err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) != 1 {
		c.Close()
		return "", nil, fmt.Errorf("in-process kafka: want one broker, got %v", addrs)
	}
	return addrs[0], c.Close, nil
}

// startMySQL runs go-mysql-server (in-memory databases) on addr. It accepts
// user root without a password; databases are created by the caller (CREATE
// DATABASE works). It loses writes under concurrent connections
// (../../../shared/INFRA-NOTES.md): every service gets one connection.
func startMySQL(addr string) (dsnBase string, stop func() error, err error) {
	// go-mysql-server logs every connection through logrus at Info, and
	// warnings meant for a shared server (secure_file_priv) at start.
	logrus.SetLevel(logrus.ErrorLevel)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("in-process mysql: %w", err)
	}
	// Native indexes: primary keys are indexes, which foreign keys need
	// ("missing index for foreign key" otherwise) and lookups use.
	provider := memory.NewDBProviderWithOpts(memory.NativeIndexProvider(true)).(*memory.DbProvider)
	engine := sqle.NewDefault(provider)
	srv, err := server.NewServer(server.Config{Protocol: "tcp", Listener: ln}, engine,
		gmssql.NewContext, memory.NewSessionBuilder(provider), nil)
	if err != nil {
		ln.Close()
		return "", nil, fmt.Errorf("in-process mysql: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Start() }()
	stop = func() error {
		err := srv.Close()
		select {
		case startErr := <-done:
			if startErr != nil && !errors.Is(startErr, net.ErrClosed) {
				err = errors.Join(err, startErr)
			}
		case <-time.After(10 * time.Second):
			err = errors.Join(err, errors.New("in-process mysql: accept loop still running 10s after Close"))
		}
		return err
	}
	return "root@tcp(" + ln.Addr().String() + ")/", stop, nil
}

// startMongo runs FerretDB v1 embedded with its SQLite handler in dir on addr.
func startMongo(addr, dir string) (uri string, stop func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: addr},
		// FerretDB logs every error reply at WARN; only real errors matter here.
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Handler: "sqlite",
		// A file: URI naming a directory, ending in "/" (never ?mode=memory:
		// it hangs on the first update).
		SQLiteURL: "file:" + strings.TrimSuffix(dir, "/") + "/",
	})
	if err != nil {
		return "", nil, fmt.Errorf("in-process mongodb (FerretDB) on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("in-process mongodb (FerretDB) still running 10s after stop")
		}
	}
	return f.MongoDBURI(), stop, nil
}

// loopbackPort checks that addr is a loopback host:port and returns the port.
func loopbackPort(addr string) (int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return 0, fmt.Errorf("%s: the in-process Kafka listens on 127.0.0.1 only", addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("%s: bad port", addr)
	}
	return port, nil
}
