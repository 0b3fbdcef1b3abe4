package ports_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

// The loop refreshes repeatedly, logs one warning per outage (not one per
// failed count), logs again after a recovery and a new outage, and returns
// nil when its context ends.
func TestRefreshLoopLogsOncePerOutage(t *testing.T) {
	var calls atomic.Int64
	// Fails on calls 1–5 and 9–12; succeeds otherwise.
	refresh := func(context.Context) error {
		n := calls.Add(1)
		if (n >= 1 && n <= 5) || (n >= 9 && n <= 12) {
			return errors.New("store down")
		}
		return nil
	}
	logs := &testenv.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ports.RefreshLoop("stuck sagas count", refresh, time.Millisecond, logger)(ctx) }()

	end := time.Now().Add(time.Minute) // a bound for a hang, not a speed target
	for calls.Load() < 15 {
		if time.Now().After(end) {
			t.Fatalf("%d refreshes after a minute, want 15", calls.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("loop returned %v, want nil on cancel", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("loop did not return within a minute of its context ending")
	}
	got := logs.String()
	if n := strings.Count(got, `msg="stuck sagas count"`); n != 2 {
		t.Errorf("%d warnings for two outages, want 2:\n%s", n, got)
	}
	if !strings.Contains(got, "error=\"store down\"") {
		t.Errorf("warning lacks the error:\n%s", got)
	}
}
