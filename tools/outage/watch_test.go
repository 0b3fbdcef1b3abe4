package outage

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/stack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// watchEvery is how often the watcher asks every service's /readyz.
const watchEvery = 250 * time.Millisecond

// round is one poll of all five services.
type round struct {
	at     time.Time
	ready  map[string]bool
	detail map[string]string // why a service was not ready
}

func (r round) allReady() bool {
	for _, name := range suite.Services {
		if !r.ready[name] {
			return false
		}
	}
	return true
}

// watcher records every service's readiness a few times a second and
// notices a service process that exits.
type watcher struct {
	s      *stack.Stack
	client *http.Client
	stop   chan struct{}
	done   chan struct{}
	exited chan struct{} // closed at the first exit

	mu     sync.Mutex
	rounds []round
	exits  map[string]time.Time
}

func watch(s *stack.Stack) *watcher {
	w := &watcher{
		s: s, client: &http.Client{Timeout: 2 * time.Second},
		stop: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{}),
		exits: map[string]time.Time{},
	}
	go w.loop()
	return w
}

// Close stops watching; safe to call twice.
func (w *watcher) Close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *watcher) loop() {
	defer close(w.done)
	for {
		w.poll()
		select {
		case <-w.stop:
			return
		case <-time.After(watchEvery):
		}
	}
}

func (w *watcher) poll() {
	r := round{at: time.Now(), ready: map[string]bool{}, detail: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range suite.Services {
		wg.Go(func() {
			ok, detail := w.readyz(name)
			mu.Lock()
			r.ready[name], r.detail[name] = ok, detail
			mu.Unlock()
		})
	}
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rounds = append(w.rounds, r)
	for _, name := range suite.Services {
		if _, seen := w.exits[name]; !seen && !w.s.Running(name) {
			w.exits[name] = time.Now()
			if len(w.exits) == 1 {
				close(w.exited)
			}
		}
	}
}

func (w *watcher) readyz(name string) (bool, string) {
	resp, err := w.client.Get("http://" + w.s.OpsAddr(name) + "/readyz")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusOK {
		return true, ""
	}
	return false, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
}

// snapshot copies what was recorded so far.
func (w *watcher) snapshot() ([]round, map[string]time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	exits := make(map[string]time.Time, len(w.exits))
	for k, v := range w.exits {
		exits[k] = v
	}
	return slices.Clone(w.rounds), exits
}

// awaitAllReady waits until a round after since found all five ready.
func (w *watcher) awaitAllReady(ctx context.Context, since time.Time) error {
	for {
		rounds, _ := w.snapshot()
		for _, r := range rounds {
			if !r.at.Before(since) && r.allReady() {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			last := "no round yet"
			if len(rounds) > 0 {
				last = fmt.Sprint(notReady(rounds[len(rounds)-1]))
			}
			return fmt.Errorf("not all services ready again (last round: %s): %w", last, ctx.Err())
		case <-time.After(watchEvery):
		}
	}
}

// notReady lists the services a round found not ready, with the reason.
func notReady(r round) []string {
	var out []string
	for _, name := range suite.Services {
		if !r.ready[name] {
			out = append(out, name+": "+r.detail[name])
		}
	}
	return out
}

// firstNotReady is, per service, the first round at or after since that
// found it not ready (services always ready since then are absent).
func firstNotReady(rounds []round, since time.Time) map[string]time.Time {
	first := map[string]time.Time{}
	for _, r := range rounds {
		if r.at.Before(since) {
			continue
		}
		for _, name := range suite.Services {
			if _, seen := first[name]; !seen && !r.ready[name] {
				first[name] = r.at
			}
		}
	}
	return first
}

// stableAllReady is the first round at or after since from which every
// later round found all five services ready (zero when the last did not).
func stableAllReady(rounds []round, since time.Time) time.Time {
	var at time.Time
	for _, r := range rounds {
		if r.at.Before(since) {
			continue
		}
		switch {
		case !r.allReady():
			at = time.Time{}
		case at.IsZero():
			at = r.at
		}
	}
	return at
}
