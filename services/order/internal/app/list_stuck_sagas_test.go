package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
)

// The step a PENDING saga waits on follows the furthest forward step it
// reached, whatever order the events arrived in.
func TestWaitingStep(t *testing.T) {
	steps := func(types ...order.EventType) []order.Step {
		out := make([]order.Step, len(types))
		for i, typ := range types {
			out[i] = order.Step{EventType: typ}
		}
		return out
	}
	for _, c := range []struct {
		steps      []order.Step
		last, next order.EventType
		service    string
	}{
		{steps("ORDER_CREATED"), "ORDER_CREATED", "STOCK_RESERVED", "inventory"},
		{steps("ORDER_CREATED", "STOCK_RESERVED"), "STOCK_RESERVED", "PAYMENT_PROCESSED", "payment"},
		{steps("ORDER_CREATED", "STOCK_RESERVED", "PAYMENT_PROCESSED"), "PAYMENT_PROCESSED", "INVENTORY_UPDATED", "inventory"},
		{steps("ORDER_CREATED", "STOCK_RESERVED", "PAYMENT_PROCESSED", "INVENTORY_UPDATED"), "INVENTORY_UPDATED", "SHIPMENT_CREATED", "shipping"},
		// Out of order: payment recorded after the deduction.
		{steps("ORDER_CREATED", "STOCK_RESERVED", "INVENTORY_UPDATED", "PAYMENT_PROCESSED"), "INVENTORY_UPDATED", "SHIPMENT_CREATED", "shipping"},
	} {
		last, next, service := app.WaitingStep(c.steps)
		if last != c.last || next != c.next || service != c.service {
			t.Errorf("WaitingStep(%v) = %s, %s, %s; want %s, %s, %s", c.steps, last, next, service, c.last, c.next, c.service)
		}
	}
}

// The stuck count asks the store for orders idle since now − stuckAfter on
// the injected clock, and keeps its last count when a count fails.
func TestStuckCounter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var asked time.Time
	fail := false
	c := app.NewStuckCounter(time.Minute, func() time.Time { return now }, func(_ context.Context, since time.Time) (int, error) {
		if fail {
			return 0, errors.New("store down")
		}
		asked = since
		return 3, nil
	})
	if err := c.Refresh(context.Background()); err != nil || c.Stuck() != 3 || !asked.Equal(now.Add(-time.Minute)) {
		t.Fatalf("refresh: %v, stuck %d, asked since %s; want 3 since %s", err, c.Stuck(), asked, now.Add(-time.Minute))
	}
	fail = true
	if err := c.Refresh(context.Background()); err == nil || c.Stuck() != 3 {
		t.Errorf("failed refresh: %v, stuck %d; want an error and the last count 3", err, c.Stuck())
	}
}
