package bench

import (
	"context"
	"fmt"
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
// reported metrics, and -v logs the full table.
//
//	go test -run '^$' -bench Sagas -benchtime 1x -timeout 30m ./tools/internal/bench/
func BenchmarkSagas(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	// The service's production deadline, so past capacity orders time out
	// as they would in production (the open-loop figures count them).
	s := stack.New(b, stack.Options{LogLevel: "warn", Env: map[string]map[string]string{suite.Order: {"ORDER_DEADLINE": "30s"}}})
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
	}
	for _, cfg := range runs {
		name := fmt.Sprintf("closed/c=%d", cfg.Concurrency)
		if cfg.Rate > 0 {
			name = fmt.Sprintf("open/rate=%g", cfg.Rate)
		}
		b.Run(name, func(b *testing.B) {
			res, err := Run(ctx, s.Clients(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			var table strings.Builder
			_ = res.WriteTable(&table)
			b.Logf("\n%s", table.String())
			if res.Unfinished > 0 || len(res.Errors) > 0 {
				b.Errorf("%d unfinished, errors %v", res.Unfinished, res.Errors)
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(res.SagasPerSec, "sagas/s")
			b.ReportMetric(float64(res.Latency.P50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(res.Latency.P95.Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(res.Latency.P99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(res.Latency.Max.Microseconds())/1000, "max-ms")
			b.ReportMetric(float64(res.Done), "orders")
		})
	}
}
