package replicas

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/tools/internal/bench"
	"github.com/sagasuite/sagasuite/tools/internal/stack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"

	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

// spreadOrders is the order client the load uses: it counts which order
// process served each CreateOrder, and retries a CreateOrder that found no
// process (Unavailable: the one it reached was killed mid-call) with the
// same request id, as a real client does; the order id follows from the
// request id, so a retry never makes a second order.
type spreadOrders struct {
	orderv1.OrderServiceClient

	mu      sync.Mutex
	byPeer  map[string]int
	retried int
}

func (c *spreadOrders) CreateOrder(ctx context.Context, in *orderv1.CreateOrderRequest, opts ...grpc.CallOption) (*orderv1.CreateOrderResponse, error) {
	for {
		var p peer.Peer
		resp, err := c.OrderServiceClient.CreateOrder(ctx, in, append(slices.Clip(opts), grpc.Peer(&p))...)
		if err == nil {
			c.mu.Lock()
			if p.Addr != nil {
				c.byPeer[p.Addr.String()]++
			}
			c.mu.Unlock()
			return resp, nil
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return resp, err
		}
		c.mu.Lock()
		c.retried++
		c.mu.Unlock()
		sleep(ctx, 100*time.Millisecond)
	}
}

func (c *spreadOrders) retriedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retried
}

// spread is how many CreateOrder calls each order process slot served.
func (c *spreadOrders) spread(s *stack.Stack) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for addr, n := range c.byPeer {
		name := "unknown " + addr
		for slot := range s.Slots(suite.Order) {
			if s.GRPCAddrOf(suite.Order, slot) == addr {
				name = label(suite.Order, slot)
			}
		}
		out[name] += n
	}
	return out
}

// figures are what the run measured, for the log and the report line.
type figures struct {
	processes                            string
	startedIn, placingFor, rolled, total time.Duration
	res                                  bench.Result
	retried                              int
	spread                               map[string]int
	events                               []disruption
	dlq                                  string
	dlqCount                             int
	audit                                string
}

func secs(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func sortedCounts(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// count is how many events of the kind were done.
func (f figures) count(kind string) int {
	n := 0
	for _, e := range f.events {
		if e.kind == kind {
			n++
		}
	}
	return n
}

// takeovers lists every disruption as process:kind:drained/ready.
func (f figures) takeovers() string {
	var parts []string
	for _, e := range f.events {
		parts = append(parts, fmt.Sprintf("%s:%s:%s/%s", e.process, e.kind, secs(e.drained), secs(e.replacementReady)))
	}
	return strings.Join(parts, ",")
}

func (f figures) line() string {
	r := f.res
	return fmt.Sprintf("processes=%q rate=%d placing=%s placed=%d completed=%d cancelled=%d unfinished=%d outcomes=%s "+
		"create_retries=%d create_errors=%d spread=%s p50=%s p99=%s rolling_stops=%d kill9=%d "+
		"takeovers(process:kind:in_flight_drained/replacement_ready)=%s dlq=%d audit=%q total=%s",
		f.processes, loadRate, secs(f.placingFor), r.Placed, r.Completed(), r.Cancelled(), r.Unfinished, sortedCounts(r.Outcomes),
		f.retried, createErrors(r), sortedCounts(f.spread), secs(r.Latency.P50), secs(r.Latency.P99),
		f.count("rolling"), f.count("kill9"), f.takeovers(), f.dlqCount, f.audit, secs(f.total))
}

func (f figures) log(t interface{ Logf(string, ...any) }) {
	r := f.res
	t.Logf("%s: started in %s; orders placed for %s at %d/s: %d placed (%d COMPLETED, %d CANCELLED, %d unfinished; %v), CreateOrder per order process %s, %d retried after Unavailable; saga latency p50 %s, p99 %s",
		f.processes, secs(f.startedIn), secs(f.placingFor), loadRate, r.Placed, r.Completed(), r.Cancelled(), r.Unfinished, r.Outcomes,
		sortedCounts(f.spread), f.retried, secs(r.Latency.P50), secs(r.Latency.P99))
	t.Logf("rolling restart of every service in %s: %d processes stopped after their replacement was ready; %d kill -9",
		secs(f.rolled), f.count("rolling"), f.count("kill9"))
	for _, e := range f.events {
		t.Logf("  %-8s %-16s replacement ready in %s; every saga in flight then had ended %s after", e.kind, e.process, secs(e.replacementReady), secs(e.drained))
	}
	t.Logf("dead letters: %s; audit: %s; whole test %s", f.dlq, f.audit, secs(f.total))
}
