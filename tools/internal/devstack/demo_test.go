package devstack_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/tools/internal/demo"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// make demo's scenario on the dev stack: every saga path, including the
// customer cancel before shipment and the deadline (the demo stalls shipping
// and payment through the stack's Control, and gives the deadline order alone
// a short deadline; every other order has minutes), ends as expected with no
// order pending and the invariants holding.
func TestDemoPassesOnTheDevStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a bound for a hung stack, not a speed target
	defer cancel()
	logs := &testenv.SyncBuffer{}
	all := suite.Addrs{Order: free, Inventory: free, Payment: free, Shipping: free, Notification: free}
	st, err := devstack.Start(ctx, devstack.Options{
		GRPC: all, Ops: all, KafkaAddr: free, MySQLAddr: free, MongoAddr: free, GatewayAddr: free, OrderDeadline: 10 * time.Minute,
		LogLevel: config.LevelWarn, LogOutput: logs, ReadyTimeout: 3 * time.Minute,
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer func() {
		if err := st.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if t.Failed() {
			t.Logf("stack logs:\n%s", logs.String())
		}
	}()
	conns, err := suite.Dial(st.GRPC, suite.WithToken(st.ToolToken("devstack-demo-test")))
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()
	res, err := demo.Run(ctx, conns.Clients, demo.Options{Control: st.Control(), Progress: io.Discard, GatewayURL: st.GatewayURL})
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	if !res.Summary.OK() || len(res.Skipped) > 0 {
		t.Fatalf("demo summary %+v, skipped %v", res.Summary, res.Skipped)
	}
	reasons := map[string]bool{}
	for _, o := range res.Orders {
		reasons[o.Order.GetStatus().String()+"/"+o.Order.GetCancelReason().String()] = true
	}
	for _, want := range []string{"ORDER_STATUS_COMPLETED/CANCEL_REASON_UNSPECIFIED",
		"ORDER_STATUS_CANCELLED/CANCEL_REASON_OUT_OF_STOCK", "ORDER_STATUS_CANCELLED/CANCEL_REASON_PAYMENT_FAILED",
		"ORDER_STATUS_CANCELLED/CANCEL_REASON_SHIPMENT_FAILED", "ORDER_STATUS_CANCELLED/CANCEL_REASON_CUSTOMER_REQUESTED",
		"ORDER_STATUS_CANCELLED/CANCEL_REASON_TIMEOUT"} {
		if !reasons[want] {
			t.Errorf("no order ended %s; got %v", want, reasons)
		}
	}
}
