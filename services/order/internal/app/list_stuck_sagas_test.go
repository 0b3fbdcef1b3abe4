package app_test

import (
	"testing"

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
