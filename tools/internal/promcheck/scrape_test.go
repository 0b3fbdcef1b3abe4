package promcheck_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/promcheck"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// A real Prometheus, configured from deploy/prometheus (the scrape template
// pointed at the dev stack's ops ports, the rules as they are), scrapes a
// running suite: every service is up, and after one order completes the
// saga duration series and the recording rule over it appear.
func TestPrometheusScrapesTheSuiteAndRecordsASaga(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	logs := &testenv.SyncBuffer{}
	const free = "127.0.0.1:0"
	all := suite.Addrs{Order: free, Inventory: free, Payment: free, Shipping: free, Notification: free}
	st, err := devstack.Start(ctx, devstack.Options{
		GRPC: all, Ops: all, KafkaAddr: free, MySQLAddr: free, MongoAddr: free, GatewayAddr: free, OrderDeadline: 10 * time.Minute,
		LogLevel: config.LevelWarn, LogOutput: logs, ReadyTimeout: 3 * time.Minute,
	})
	if err != nil {
		t.Fatalf("dev stack: %v", err)
	}
	defer func() {
		if err := st.Stop(); err != nil {
			t.Errorf("dev stack Stop: %v", err)
		}
		if t.Failed() {
			t.Logf("stack logs:\n%s", logs.String())
		}
	}()

	// The template, with the stack's ops ports and a 1s scrape and evaluation.
	dir := t.TempDir()
	tmpl, err := os.ReadFile(filepath.Join(promDir, configFile))
	if err != nil {
		t.Fatal(err)
	}
	pairs := []string{"scrape_interval: 15s", "scrape_interval: 1s", "evaluation_interval: 15s", "evaluation_interval: 1s"}
	for _, name := range suite.Services {
		pairs = append(pairs, `"`+devstack.DefaultOps.Of(name)+`"`, `"`+st.Ops.Of(name)+`"`)
	}
	config := string(tmpl)
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(config, pairs[i]) {
			t.Fatalf("%s lacks %s", configFile, pairs[i])
		}
		config = strings.ReplaceAll(config, pairs[i], pairs[i+1])
	}
	rules, err := os.ReadFile(filepath.Join(promDir, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, rulesFile), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, configFile)
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, err := promcheck.FreeLoopbackPort(19190, 19290)
	if err != nil {
		t.Fatal(err)
	}
	prom, err := promcheck.Start(ctx, promcheck.Options{ConfigFile: configPath, DataDir: filepath.Join(dir, "data"), Addr: addr, ReadyTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := prom.Stop(); err != nil {
			t.Errorf("prometheus Stop: %v", err)
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", prom.Log())
		}
	}()

	conns, err := suite.Dial(st.GRPC, suite.WithToken(st.ToolToken("promcheck-test")))
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()
	resp, err := conns.Order.CreateOrder(ctx, &orderv1.CreateOrderRequest{
		CustomerId: uuid.NewString(), Currency: devstack.Currency, PaymentMethodToken: "tok_visa", RequestId: uuid.NewString(),
		Lines: []*commonv1.LineItem{{Sku: "DEV-MUG", Quantity: 1, UnitPriceMinor: 1250}},
		ShippingAddress: &commonv1.Address{Name: "Ada Lovelace", Line1: "1 Analytical Street", City: "Berlin",
			PostalCode: "10115", CountryCode: "DE"},
	})
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	id := resp.GetOrder().GetOrderId()
	waitFor(t, 3*time.Minute, "order "+id+" COMPLETED", func() (bool, string) {
		r, err := conns.Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: id})
		s := r.GetOrder().GetStatus()
		return s == orderv1.OrderStatus_ORDER_STATUS_COMPLETED, s.String() + " " + errString(err)
	})

	// Generous bounds: a few 1s scrapes and rule evaluations are enough.
	query := func(expr string, ok func([]promcheck.Sample) bool) {
		t.Helper()
		waitFor(t, 3*time.Minute, expr, func() (bool, string) {
			got, err := prom.Query(ctx, expr)
			if err != nil {
				return false, err.Error()
			}
			return ok(got), "result " + formatSamples(got)
		})
	}
	query(`up == 1`, func(s []promcheck.Sample) bool { return len(s) == len(suite.Services) })
	query(`sagasuite_saga_duration_seconds_count{job="order",outcome="completed"} >= 1`, func(s []promcheck.Sample) bool { return len(s) == 1 })
	query(`sagasuite:saga_ended:rate5m{outcome="completed"}`, func(s []promcheck.Sample) bool { return len(s) == 1 })
}

func waitFor(t *testing.T, bound time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last: %s)", what, bound, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func formatSamples(s []promcheck.Sample) string {
	var b strings.Builder
	for _, x := range s {
		b.WriteString(x.Labels["__name__"] + x.Labels["job"] + "=" + x.Value + " ")
	}
	return "[" + b.String() + "]"
}
