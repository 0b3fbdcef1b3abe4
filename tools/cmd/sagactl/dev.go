package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// processStart is as close to the process's start as Go code gets without
// /proc (package variables are initialised before main).
var processStart = time.Now()

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sagactl dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts devstack.Options
	for _, name := range suite.Services {
		fs.Func(name, fmt.Sprintf("%s service gRPC `address` (default %s)", name, devstack.DefaultGRPC.Of(name)), addrSetter(&opts.GRPC, name))
		fs.Func(name+"-ops", fmt.Sprintf("%s ops HTTP `address` (default %s)", name, devstack.DefaultOps.Of(name)), addrSetter(&opts.Ops, name))
		fs.Func(name+"-web", fmt.Sprintf("%s browser listener (gRPC-Web, Connect) `address` (default %s)", name, devstack.DefaultWeb.Of(name)), addrSetter(&opts.Web, name))
	}
	fs.StringVar(&opts.KafkaAddr, "kafka-listen", devstack.DefaultKafkaAddr, "where the in-process Kafka listens (loopback `host:port`)")
	fs.StringVar(&opts.MySQLAddr, "mysql-listen", devstack.DefaultMySQLAddr, "where the in-process MySQL listens (`host:port`)")
	fs.StringVar(&opts.MongoAddr, "mongo-listen", devstack.DefaultMongoAddr, "where the in-process MongoDB (FerretDB) listens (`host:port`)")
	fs.StringVar(&opts.GatewayAddr, "gateway-listen", devstack.DefaultGatewayAddr, "where the simulated payment gateway listens (HTTP, `host:port`)")
	fs.StringVar(&opts.GatewayLedger, "gateway-ledger", "", "the simulated gateway's ledger `file` (default: temporary; with --mysql, dev-gateway-ledger.jsonl in the user cache directory)")
	kafka := fs.String("kafka", "", "use this external Kafka (`host:port`, comma-separated) instead of the in-process one")
	fs.StringVar(&opts.MySQLDSN, "mysql", "", "use this external MySQL/MariaDB (go-sql-driver `DSN`, e.g. 'sagasuite:sagasuite@tcp(127.0.0.1:13306)/'; databases "+devstack.Namespace+"* are created)")
	fs.StringVar(&opts.MongoURI, "mongo", "", "use this external MongoDB/FerretDB (`URI`, e.g. mongodb://127.0.0.1:17017/)")
	cassandra := fs.String("cassandra", "", "use this external Cassandra (`hosts`, comma-separated) instead of keeping notifications in memory")
	fs.StringVar(&opts.TopicPrefix, "topic-prefix", "", "Kafka topic and group `prefix` (default none in-process, "+devstack.DefaultExternalTopicPrefix+" on an external Kafka)")
	fs.DurationVar(&opts.OrderDeadline, "order-deadline", 0, "how long an order may stay PENDING before it is cancelled (default 30s)")
	fs.StringVar(&opts.StateFile, "state-file", devstack.DefaultStateFile(), "write the stack's signing key path, tokens and addresses to this `file` while it runs (other sagactl commands find the stack through it; $"+devstack.StateFileEnv+" moves it; empty: none)")
	fs.StringVar(&opts.Console, "console-listen", devstack.DefaultConsoleAddr, "where the web console is served (`host:port`; empty: not served)")
	webOrigins := fs.String("web-origins", "", "origins (`list`, comma-separated, e.g. http://127.0.0.1:8090) the browser listeners allow by CORS (default: the console's own, "+
		strings.Join(devstack.DefaultWebOrigins, " and ")+" for the default --console-listen)")
	logLevel := fs.String("log-level", "info", "services' log `level`: debug, info, warn, error (logs go to stderr)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sagactl dev [flags]")
		fmt.Fprintln(stderr, "\nRuns all five services in this process with in-process Kafka (kfake), MySQL (go-mysql-server)")
		fmt.Fprintln(stderr, "and MongoDB (FerretDB, SQLite) servers — nothing to install — seeds a small catalog and prints")
		fmt.Fprintln(stderr, "the addresses. Notifications are kept in memory unless --cassandra is given (no Cassandra")
		fmt.Fprintln(stderr, "server exists in Go). --kafka/--mysql/--mongo/--cassandra use external servers instead, e.g. the")
		fmt.Fprintln(stderr, "local real stack (make infra-up). Ctrl-C stops everything.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	opts.Kafka, opts.Cassandra = splitList(*kafka), splitList(*cassandra)
	if *webOrigins != "" {
		opts.WebOrigins = splitList(*webOrigins)
		for _, o := range opts.WebOrigins {
			if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				fmt.Fprintf(stderr, "sagactl dev: --web-origins %q: want origins like http://host:port\n", o)
				return exitError
			}
		}
	}
	opts.LogLevel = config.LogLevel(*logLevel)
	switch opts.LogLevel {
	case config.LevelDebug, config.LevelInfo, config.LevelWarn, config.LevelError:
	default:
		fmt.Fprintf(stderr, "sagactl dev: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return exitError
	}
	opts.LogOutput = stderr

	fmt.Fprintln(stdout, "sagactl dev: starting the sagasuite dev stack…")
	st, err := devstack.Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl dev: %v\n", err)
		return exitError
	}
	since := processStart
	if t, ok := procStartTime(); ok {
		since = t
	}
	fmt.Fprintf(stdout, "\nsagasuite dev stack ready in %s (process start → all five services ready, catalog seeded; Start itself %s), RSS %s\n\n",
		time.Since(since).Round(time.Millisecond), st.ReadyIn.Round(time.Millisecond), rss())
	st.PrintBanner(stdout)
	fmt.Fprintln(stdout, "\nCtrl-C stops everything.")

	code := exitOK
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "\nsagactl dev: stopping…")
	case <-st.Failed():
		fmt.Fprintf(stderr, "sagactl dev: %v; stopping\n", st.Err())
		code = exitProblems
	}
	stopped := time.Now()
	if err := st.Stop(); err != nil {
		fmt.Fprintf(stderr, "sagactl dev: stop: %v\n", err)
		code = exitProblems
	}
	fmt.Fprintf(stdout, "sagactl dev: stopped in %s\n", time.Since(stopped).Round(time.Millisecond))
	return code
}

func addrSetter(a *suite.Addrs, name string) func(string) error {
	return func(v string) error {
		switch name {
		case suite.Order:
			a.Order = v
		case suite.Inventory:
			a.Inventory = v
		case suite.Payment:
			a.Payment = v
		case suite.Shipping:
			a.Shipping = v
		case suite.Notification:
			a.Notification = v
		}
		return nil
	}
}

// procStartTime is when the kernel started this process (Linux), to the
// clock tick (10 ms).
func procStartTime() (time.Time, bool) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return time.Time{}, false
	}
	// Fields after the command name (which may contain spaces) start at ")".
	i := strings.LastIndexByte(string(stat), ')')
	uptime, err2 := os.ReadFile("/proc/uptime")
	if i < 0 || err2 != nil {
		return time.Time{}, false
	}
	fields := strings.Fields(string(stat[i+1:]))
	up := strings.Fields(string(uptime))
	if len(fields) < 20 || len(up) < 1 {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseInt(fields[19], 10, 64) // field 22: starttime
	upSec, err2 := strconv.ParseFloat(up[0], 64)
	if err != nil || err2 != nil {
		return time.Time{}, false
	}
	const clkTck = 100 // USER_HZ on Linux
	age := time.Duration(upSec*float64(time.Second)) - time.Duration(ticks)*time.Second/clkTck
	if age < 0 || age > time.Hour {
		return time.Time{}, false
	}
	return time.Now().Add(-age), true
}

// rss is the process's resident set size (Linux), or "n/a".
func rss() string {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64); err == nil {
				return fmt.Sprintf("%d MB", kb/1024)
			}
		}
	}
	return "n/a"
}
