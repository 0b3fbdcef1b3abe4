package bench

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/stack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// BenchmarkSagas measures the whole suite as five processes on the local real
// stack (make infra-up): closed loops at several concurrencies and open
// loops at several rates, all-success orders. Each sub-benchmark is one bench
// run whatever b.N is (run with -benchtime 1x); its figures are the
// reported metrics, and -v logs the full table, with CPU per process and
// store/broker operations per completed saga.
//
//	go test -run '^$' -bench Sagas -benchtime 1x -timeout 30m ./tools/internal/bench/
func BenchmarkSagas(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	// The service's production deadline and admission bound, so past
	// capacity orders are refused or time out as they would in production
	// (the open-loop figures count both).
	s := stack.New(b, stack.Options{LogLevel: "warn", Env: map[string]map[string]string{
		suite.Order: {"ORDER_DEADLINE": "30s", "ORDER_MAX_PENDING_ORDERS": "200"},
	}})
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	// Warm up connections, topics and caches.
	if _, err := Run(ctx, s.Clients(), Config{Concurrency: 4, Orders: 40}); err != nil {
		b.Fatal(err)
	}
	runs := []Config{
		{Concurrency: 1, Orders: 100},
		{Concurrency: 8, Orders: 600},
		{Concurrency: 32, Orders: 1200},
		{Concurrency: 64, Orders: 1200},
		{Rate: 25, Duration: 20 * time.Second},
		{Rate: 50, Duration: 20 * time.Second},
		{Rate: 100, Duration: 20 * time.Second},
		{Rate: 200, Duration: 20 * time.Second},
	}
	for _, cfg := range runs {
		name := fmt.Sprintf("closed/c=%d", cfg.Concurrency)
		if cfg.Rate > 0 {
			name = fmt.Sprintf("open/rate=%g", cfg.Rate)
		}
		b.Run(name, func(b *testing.B) {
			cfg.Probe = stackProbe(b, s)
			res, err := Run(ctx, s.Clients(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			var table strings.Builder
			_ = res.WriteTable(&table)
			b.Logf("\n%s", table.String())
			// Past capacity the order service refuses (ResourceExhausted):
			// that is the designed answer, not an error of the run.
			errs := maps.Clone(res.Errors)
			delete(errs, "CreateOrder: ResourceExhausted")
			if res.Unfinished > 0 || len(errs) > 0 {
				b.Errorf("%d unfinished, errors %v", res.Unfinished, errs)
			}
			b.ReportMetric(float64(res.Errors["CreateOrder: ResourceExhausted"]), "refused")
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(res.SagasPerSec, "sagas/s")
			b.ReportMetric(float64(res.Latency.P50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(res.Latency.P95.Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(res.Latency.P99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(res.Latency.Max.Microseconds())/1000, "max-ms")
			b.ReportMetric(float64(res.Done), "orders")
			if in := res.Instruments; in != nil {
				b.ReportMetric(in.SuiteMSPerSag, "cpu-ms/saga")
			}
		})
	}
}

// BenchmarkOverload offers the suite several times what it completes, open
// loop at 60/s for a minute, with the order service's backlog bound at 100
// (about half of throughput × deadline when this shared box manages ~7
// sagas/s): orders past the bound are refused at once (ResourceExhausted),
// and the accepted ones should end before their 30 s deadline — TIMEOUT
// outcomes show if not. Nothing is asserted but that every order ends.
//
//	go test -run '^$' -bench Overload -benchtime 1x -timeout 30m -v ./tools/internal/bench/
func BenchmarkOverload(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	s := stack.New(b, stack.Options{LogLevel: "warn", Env: map[string]map[string]string{
		suite.Order: {"ORDER_MAX_PENDING_ORDERS": "100"},
	}})
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := Run(ctx, s.Clients(), Config{Concurrency: 4, Orders: 40}); err != nil {
		b.Fatal(err)
	}
	res, err := Run(ctx, s.Clients(), Config{Rate: 60, Duration: time.Minute, Probe: stackProbe(b, s)})
	if err != nil {
		b.Fatal(err)
	}
	var table strings.Builder
	_ = res.WriteTable(&table)
	b.Logf("\n%s", table.String())
	if res.Unfinished > 0 {
		b.Errorf("%d orders unfinished", res.Unfinished)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(res.Placed), "accepted")
	b.ReportMetric(float64(res.Errors["CreateOrder: ResourceExhausted"]), "refused")
	b.ReportMetric(float64(res.Outcomes["TIMEOUT"]), "timeouts")
	b.ReportMetric(res.SagasPerSec, "sagas/s")
	b.ReportMetric(float64(res.Latency.P99.Microseconds())/1000, "p99-ms")
}

// BenchmarkIdle measures what the suite costs with no traffic: CPU ms per
// second of each service and server over 30 s of idleness after a short
// warm-up (partition readers long-polling, relays polling, heartbeats), and
// the partition readers' reconnects in that time (sagasuite_bus_fetch_dials:
// 0 expected once connected). Nothing is asserted.
//
//	go test -run '^$' -bench Idle -benchtime 1x -timeout 30m -v ./tools/internal/bench/
func BenchmarkIdle(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	s := stack.New(b, stack.Options{LogLevel: "warn"})
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := Run(ctx, s.Clients(), Config{Concurrency: 4, Orders: 40}); err != nil {
		b.Fatal(err)
	}
	time.Sleep(5 * time.Second) // let the warm-up's tail settle
	const idle = 30
	probe := stackProbe(b, s)
	before := probe.snapshot(ctx)
	time.Sleep(idle * time.Second)
	after := probe.snapshot(ctx)
	// "Per saga" divides by the seconds here: CPU ms and operations per second.
	in := compare(before, after, idle)
	var total float64
	for _, p := range in.CPU {
		b.Logf("%-14s %7.1f ms CPU/s (found by %s)", p.Name, p.PerSaga, p.FoundBy)
		if p.Suite {
			total += p.PerSaga
		}
	}
	for _, op := range in.Ops {
		if strings.Contains(op.Counter, "fetch") || strings.Contains(op.Counter, "commit") {
			b.Logf("%-14s %s: %.2f per second", op.Source, op.Counter, op.PerSaga)
		}
	}
	b.Logf("suite total %.1f ms CPU per idle second", total)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(total, "cpu-ms/s")
}
