package app

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sagasuite/sagasuite/libs/auth"
)

// Default bounds of open WatchOrder streams in one process.
const (
	// DefaultMaxWatchStreamsPerCustomer: a shop page follows a handful of
	// orders; more from one customer is a runaway client or an attack.
	DefaultMaxWatchStreamsPerCustomer = 16
	// DefaultMaxWatchStreams: each stream holds a goroutine, a watch and an
	// HTTP/2 stream; this many stay far below a pod's memory.
	DefaultMaxWatchStreams = 10000
)

// TooManyStreamsError refuses a WatchOrder stream: the customer, or the
// whole process, has Limit streams open.
type TooManyStreamsError struct {
	// PerCustomer is true when the customer's own bound was reached, false
	// for the process's.
	PerCustomer bool
	Limit       int
}

func (e *TooManyStreamsError) Error() string {
	if e.PerCustomer {
		return fmt.Sprintf("too many open WatchOrder streams for this customer (limit %d); close one or poll GetOrder", e.Limit)
	}
	return fmt.Sprintf("too many open WatchOrder streams on this server (limit %d); retry later or poll GetOrder", e.Limit)
}

// StreamLimits counts open WatchOrder streams, per customer and in all.
// The bounds are per process: with N replicas a customer may hold up to N
// times the per-customer bound, each replica as much as one can afford.
type StreamLimits struct {
	perCustomer, total int

	mu         sync.Mutex
	open       int
	byCustomer map[string]int
	// onChange, when set, is told +1 for each stream admitted and -1 for
	// each released (the open-streams metric, summed over whatever shares it).
	onChange func(delta int64)
}

// OnChange sets what is told of every stream opened (+1) and closed (-1);
// set it before the limits are used. It must not block.
func (l *StreamLimits) OnChange(f func(delta int64)) { l.onChange = f }

// NewStreamLimits bounds open streams per customer and in all; both must be
// positive.
func NewStreamLimits(perCustomer, total int) (*StreamLimits, error) {
	if perCustomer <= 0 || total <= 0 {
		return nil, errors.New("watch stream limits must be positive")
	}
	return &StreamLimits{perCustomer: perCustomer, total: total, byCustomer: map[string]int{}}, nil
}

// Open returns how many streams are open.
func (l *StreamLimits) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// streamSlot is one admitted stream; release it once.
type streamSlot struct {
	limits   *StreamLimits
	customer string // "" until charged to a customer
	once     sync.Once
}

// admit takes a process-wide slot, before the store is read.
func (l *StreamLimits) admit() (*streamSlot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.total {
		return nil, &TooManyStreamsError{Limit: l.total}
	}
	l.open++
	if l.onChange != nil {
		l.onChange(1)
	}
	return &streamSlot{limits: l}, nil
}

// charge counts the stream against customer as well.
func (s *streamSlot) charge(customer string) error {
	l := s.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byCustomer[customer] >= l.perCustomer {
		return &TooManyStreamsError{PerCustomer: true, Limit: l.perCustomer}
	}
	l.byCustomer[customer]++
	s.customer = customer
	return nil
}

func (s *streamSlot) release() {
	s.once.Do(func() {
		l := s.limits
		l.mu.Lock()
		defer l.mu.Unlock()
		l.open--
		if l.onChange != nil {
			l.onChange(-1)
		}
		if s.customer != "" {
			if l.byCustomer[s.customer]--; l.byCustomer[s.customer] <= 0 {
				delete(l.byCustomer, s.customer)
			}
		}
	})
}

// streamCustomer is whom a stream of an order of orderCustomer counts
// against: the calling customer (their token's subject), else the order's
// customer. A tool's service identity (bench, demo, audit follow many
// orders of a few test customers) is bounded by the process-wide cap only.
func streamCustomer(ctx context.Context, orderCustomer string) (string, bool) {
	if p, ok := auth.FromContext(ctx); ok && p.Has(auth.RoleService) {
		return "", false
	}
	if scoped, ok := auth.CustomerScope(ctx); ok {
		return scoped, true
	}
	return orderCustomer, true
}
