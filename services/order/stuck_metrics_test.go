package order_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/telemetry/telemetrytest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/services/order"
)

// The sagasuite.saga.stuck gauge as Prometheus scrapes it from the ops
// port's /metrics: an order left without progress past ORDER_STUCK_AFTER (on
// the manual clock) shows as 1, an order created after it is not counted,
// and the gauge drops back to 0 once the stuck order is cancelled.
func TestStuckGaugeOnTheOpsPortMetrics(t *testing.T) {
	reg := telemetrytest.Install(t) // before the service makes its instruments; /metrics serves reg
	const stuckAfter = 10 * time.Second
	cfg := testConfig(t, func(c *order.Config) {
		c.StuckAfter = stuckAfter
		c.StuckCountInterval = 20 * time.Millisecond
	})
	clk := clock.NewManual(time.Now())
	inst := servicetest.Launch(t, service.Runtime{Clock: clk, SharedTelemetry: true, Registry: reg},
		func(ctx context.Context, rt service.Runtime) error { return order.Run(ctx, cfg, rt) })
	s := &suite{client: orderv1.NewOrderServiceClient(inst.WaitReady()), clock: clk,
		pub: bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(cfg.KafkaConfig.TopicPrefix))}
	t.Cleanup(func() { s.pub.Close() })
	metricsURL := "http://" + inst.OpsAddr() + "/metrics"
	customer := testenv.IDFor("customer stuck gauge")

	stalled := s.create(t, customer, "")
	awaitStuck(t, metricsURL, 0) // the series exists before anything is stuck
	clk.Advance(stuckAfter + time.Second)
	s.create(t, customer, "") // fresh: not stuck
	awaitStuck(t, metricsURL, 1)

	if _, err := s.client.CancelOrder(context.Background(), &orderv1.CancelOrderRequest{OrderId: stalled.GetOrderId(), Reason: "stuck"}); err != nil {
		t.Fatal(err)
	}
	awaitStuck(t, metricsURL, 0)
}

// awaitStuck scrapes url until sagasuite_saga_stuck shows want (bounded by
// wait), failing with the last value and error seen.
func awaitStuck(t *testing.T, url string, want float64) {
	t.Helper()
	var got float64
	var err error
	end := time.Now().Add(wait)
	for {
		if got, err = scrapeGauge(url, "sagasuite_saga_stuck"); err == nil && got == want {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("sagasuite_saga_stuck on %s: last %v (error %v) after %s, want %v", url, got, err, wait, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrapeGauge reads the Prometheus text exposition at url and returns the
// sum of family name's samples; an absent family is an error.
func scrapeGauge(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	total, found := 0.0, false
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for lines.Scan() {
		line := lines.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (!strings.HasPrefix(rest, "{") && !strings.HasPrefix(rest, " ")) {
			continue // a comment, another family or a longer name
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("sample %q: %w", line, err)
		}
		total, found = total+v, true
	}
	if err := lines.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("no %s in %s", name, url)
	}
	return total, nil
}
