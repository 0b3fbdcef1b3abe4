package app

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBacklogAdmitsUpToItsBound(t *testing.T) {
	stored, countErr := 0, error(nil)
	b, err := NewBacklog(3, 2*time.Second, func(context.Context) (int, error) { return stored, countErr })
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := b.admit(); err != nil {
			t.Fatalf("order %d refused under the bound: %v", i, err)
		}
		if i < 2 {
			b.done(true) // the third is still being created
		}
	}
	err = b.admit()
	var over *OverloadedError
	if !errors.As(err, &over) || over.Pending != 3 || over.Limit != 3 || over.RetryAfter != 2*time.Second {
		t.Fatalf("4th order: %v, want OverloadedError{3, 3, 2s}", err)
	}
	b.done(false) // the third created nothing (a retried request): its place is free
	if err := b.admit(); err != nil {
		t.Fatalf("after a request that created nothing: %v", err)
	}
	// That one is in flight while the store counts the two committed ones
	// and finds one of them ended: 1 stored + 1 in flight.
	stored = 1
	if err := b.Refresh(context.Background()); err != nil || b.Pending() != 2 {
		t.Fatalf("Refresh: %v, pending %d, want 2", err, b.Pending())
	}
	b.done(true)
	if b.Pending() != 2 {
		t.Fatalf("after the in-flight order committed: pending %d, want 2", b.Pending())
	}
	if err := b.admit(); err != nil {
		t.Fatalf("under the bound after the refresh: %v", err)
	}
	b.done(true)
	if err := b.admit(); err == nil {
		t.Fatal("admitted past the bound after a refresh")
	}

	// A failed count keeps the estimate.
	countErr = errors.New("store down")
	if err := b.Refresh(context.Background()); err == nil || b.Pending() != 3 {
		t.Fatalf("failed Refresh: %v, pending %d, want the error and 3 kept", err, b.Pending())
	}
}

// Orders committed while the store counts are kept on top of the count
// (the count may have missed them): the estimate errs high, never low.
func TestBacklogKeepsOrdersAdmittedDuringTheCount(t *testing.T) {
	var b *Backlog
	b, err := NewBacklog(10, time.Second, func(context.Context) (int, error) {
		if err := b.admit(); err != nil { // lands while the count runs
			t.Error(err)
		}
		b.done(true)
		return 4, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(context.Background()); err != nil || b.Pending() != 5 {
		t.Fatalf("Refresh: %v, pending %d, want 4 counted + 1 admitted meanwhile", err, b.Pending())
	}
}

func TestNewBacklogRejectsBadBounds(t *testing.T) {
	count := func(context.Context) (int, error) { return 0, nil }
	if _, err := NewBacklog(0, time.Second, count); err == nil {
		t.Error("limit 0 accepted")
	}
	if _, err := NewBacklog(5, 0, count); err == nil {
		t.Error("retry hint 0 accepted")
	}
}
