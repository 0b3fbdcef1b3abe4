package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// defaultOpsAddrs are the services' documented ops ports (README); the
// notification service has no outbox.
var defaultOpsAddrs = map[string]string{
	"order":     "127.0.0.1:8081",
	"inventory": "127.0.0.1:8082",
	"payment":   "127.0.0.1:8083",
	"shipping":  "127.0.0.1:8084",
}

func runOutbox(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: sagactl outbox list  --service NAME [--ops ADDR] [--pending] [--limit N] [--json]")
		fmt.Fprintln(stderr, "       sagactl outbox retry --service NAME [--ops ADDR] (--id ID | --all)")
		fmt.Fprintln(stderr, "\nLists a service's parked outbox rows (those Kafka refused too often; --pending: rows waiting to be")
		fmt.Fprintln(stderr, "published) or un-parks them so its relay publishes them again, through the service's ops port.")
		fmt.Fprintln(stderr, "Services: "+strings.Join(outboxServices(), ", ")+". `sagactl outbox list -h` shows the flags.")
	}
	if len(args) == 0 {
		usage()
		return exitError
	}
	switch args[0] {
	case "list":
		return runOutboxList(ctx, args[1:], stdout, stderr)
	case "retry":
		return runOutboxRetry(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		usage()
		return exitOK
	}
	fmt.Fprintf(stderr, "sagactl outbox: unknown subcommand %q\n\n", args[0])
	usage()
	return exitError
}

func outboxServices() []string {
	names := make([]string, 0, len(defaultOpsAddrs))
	for n := range defaultOpsAddrs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// outboxTarget registers --service and --ops and, after parsing, resolves
// the admin API's base URL.
type outboxTarget struct {
	service, ops *string
	timeout      *time.Duration
	tokens       *tokenFlags // the admin API wants an operator or service token
	stderr       io.Writer
}

func outboxTargetFlags(fs *flag.FlagSet) outboxTarget {
	return outboxTarget{
		service: fs.String("service", "", "`name` of the service: "+strings.Join(outboxServices(), ", ")+" (required)"),
		ops:     fs.String("ops", "", "the service's ops `address` (default: its documented port, 8081–8084)"),
		timeout: fs.Duration("timeout", 10*time.Second, "bound on the request"),
		tokens:  addTokenFlags(fs, "sagactl-outbox", false),
		stderr:  fs.Output(),
	}
}

func (o outboxTarget) baseURL() (string, error) {
	if *o.service == "" {
		return "", fmt.Errorf("--service is required (%s)", strings.Join(outboxServices(), ", "))
	}
	addr := *o.ops
	if addr == "" {
		def, ok := defaultOpsAddrs[*o.service]
		if !ok {
			return "", fmt.Errorf("service %q has no outbox; one of %s (or give --ops)", *o.service, strings.Join(outboxServices(), ", "))
		}
		addr = def
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("--ops %q is not an address (host:port)", *o.ops)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// call sends the request and decodes a 200 answer into out, or returns the
// API's error text.
func (o outboxTarget) call(ctx context.Context, method, url string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, *o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	token, err := o.tokens.source(o.stderr)
	if err != nil {
		return err
	}
	if err := suite.Authorize(req, token); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s ops API: %w", *o.service, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s ops API: %w", *o.service, err)
	}
	if resp.StatusCode != http.StatusOK {
		var apiErr struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &apiErr) == nil && apiErr.Error != "" {
			return fmt.Errorf("%s: %s", *o.service, apiErr.Error)
		}
		return fmt.Errorf("%s ops API: %s %s: %s (is this the service's ops port?)", *o.service, method, url, resp.Status)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s ops API: undecodable answer: %w", *o.service, err)
	}
	return nil
}

func runOutboxList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sagactl outbox list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := outboxTargetFlags(fs)
	pending := fs.Bool("pending", false, "list rows waiting to be published instead of parked ones")
	limit := fs.Int("limit", 100, "most rows to list (1–1000)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	base, err := target.baseURL()
	if err != nil {
		fmt.Fprintf(stderr, "sagactl outbox list: %v\n", err)
		return exitError
	}
	if *limit < 1 || *limit > 1000 {
		fmt.Fprintf(stderr, "sagactl outbox list: --limit must be 1–1000, got %d\n", *limit)
		return exitError
	}
	state := "parked"
	if *pending {
		state = "pending"
	}
	var list outbox.AdminList
	q := url.Values{"state": {state}, "limit": {fmt.Sprint(*limit)}}
	if err := target.call(ctx, http.MethodGet, base+outbox.AdminListPath+"?"+q.Encode(), &list); err != nil {
		fmt.Fprintf(stderr, "sagactl outbox list: %v\n", err)
		return exitError
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(list)
		return exitOK
	}
	relay := string(list.Relay.State)
	if list.Relay.LastError != "" {
		relay += " (" + list.Relay.LastError + ")"
	}
	fmt.Fprintf(stdout, "%s outbox: %d %s rows shown; relay %s\n", list.Service, len(list.Rows), list.State, relay)
	if len(list.Rows) == 0 {
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tTOPIC\tKEY\tBYTES\tATTEMPTS\tCREATED\tLAST ERROR")
	for _, r := range list.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.ID, r.Type, r.Topic, r.Key, r.Bytes, r.Attempts,
			r.CreatedAt.UTC().Format(time.RFC3339), oneLine(r.LastError, 120))
	}
	_ = tw.Flush()
	return exitOK
}

func runOutboxRetry(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sagactl outbox retry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := outboxTargetFlags(fs)
	id := fs.String("id", "", "the parked row's `id` (from list)")
	all := fs.Bool("all", false, "un-park every parked row")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	base, err := target.baseURL()
	if err != nil {
		fmt.Fprintf(stderr, "sagactl outbox retry: %v\n", err)
		return exitError
	}
	if (*id == "") == !*all {
		fmt.Fprintln(stderr, "sagactl outbox retry: give either --id ID or --all")
		return exitError
	}
	q := url.Values{}
	if *all {
		q.Set("all", "true")
	} else {
		q.Set("id", *id)
	}
	var res outbox.AdminRetried
	if err := target.call(ctx, http.MethodPost, base+outbox.AdminRetryPath+"?"+q.Encode(), &res); err != nil {
		fmt.Fprintf(stderr, "sagactl outbox retry: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "%s outbox: %d parked rows un-parked; the relay publishes them next\n", res.Service, res.Retried)
	return exitOK
}
