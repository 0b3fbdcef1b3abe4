package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

func TestSagaUsage(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"no order id", []string{"saga"}, exitError, "give the order id"},
		{"not a uuid", []string{"saga", "--token", "x", "order-42"}, exitError, `order id "order-42" is not a UUID`},
		{"two ids", []string{"saga", uuid.NewString(), uuid.NewString()}, exitError, "unexpected arguments"},
		{"flag after the id is parsed", []string{"saga", "not-a-uuid", "--json"}, exitError, "is not a UUID"},
		{"bad flag after the id", []string{"saga", uuid.NewString(), "--nope"}, exitError, "flag provided but not defined: -nope"},
		{"help", []string{"saga", "-h"}, exitOK, "No trace id"},
		{"unreachable", []string{"saga", "--token", "x", "--order", "127.0.0.1:1", "--timeout", "2s", uuid.NewString()}, exitError, "get order"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := sagactl(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.inStderr) || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit %d and %q", code, out, stderr, tc.code, tc.inStderr)
			}
		})
	}
}

// An order placed on the dev stack (five services in this process) runs to
// COMPLETED; `sagactl saga <id>` then shows its five events from the saga
// log in saga order, each with its producer, and the notification service's
// rows; --json says the same; an unknown order is a clear error.
func TestSagaTimelineOnTheDevStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a bound for a hung stack, not a speed target
	defer cancel()
	const free = "127.0.0.1:0"
	all := suite.Addrs{Order: free, Inventory: free, Payment: free, Shipping: free, Notification: free}
	logs := &testenv.SyncBuffer{}
	st, err := devstack.Start(ctx, devstack.Options{
		GRPC: all, Ops: all, KafkaAddr: free, MySQLAddr: free, MongoAddr: free, GatewayAddr: free, OrderDeadline: 10 * time.Minute,
		LogLevel: config.LevelWarn, LogOutput: logs, ReadyTimeout: 3 * time.Minute, StateFile: t.TempDir() + "/dev-stack.env",
	})
	if err != nil {
		t.Fatalf("dev stack: %v", err)
	}
	defer func() {
		if err := st.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if t.Failed() {
			t.Logf("stack logs:\n%s", logs.String())
		}
	}()
	conns, err := suite.Dial(st.GRPC, suite.WithToken(st.ToolToken("saga-test")))
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()
	place := func(country, postal string) string {
		t.Helper()
		resp, err := conns.Order.CreateOrder(ctx, &orderv1.CreateOrderRequest{
			CustomerId: uuid.NewString(), Currency: devstack.Currency, PaymentMethodToken: "tok_visa", RequestId: uuid.NewString(),
			Lines: []*commonv1.LineItem{{Sku: "DEV-MUG", Quantity: 2, UnitPriceMinor: 1250}},
			ShippingAddress: &commonv1.Address{Name: "Ada Lovelace", Line1: "1 Analytical Street", City: "Berlin",
				PostalCode: postal, CountryCode: country},
		})
		if err != nil {
			t.Fatalf("CreateOrder: %v", err)
		}
		return resp.GetOrder().GetOrderId()
	}
	orderID := place("DE", "10115")
	undeliverable := place("AQ", "9999") // no carrier serves it: SHIPMENT_FAILED, then compensations

	token, err := st.ToolToken("sagactl-saga").Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	args := func(extra ...string) []string {
		a := []string{"saga", "--token", token}
		for _, name := range suite.Services {
			a = append(a, "--"+name, st.GRPC.Of(name))
		}
		return append(a, extra...)
	}
	// --wait: until the order is terminal and the saga log has every step.
	code, out, stderr := sagactl(t, args(orderID, "--wait", "3m")...)
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	t.Logf("sagactl saga %s:\n%s", orderID, out)
	if !strings.Contains(out, "status COMPLETED") || !strings.Contains(out, "services order, inventory, payment, shipping, notification") {
		t.Errorf("header lacks the status or the five services:\n%s", out)
	}
	// The saga's events in saga order, each from its producer (other rows,
	// the notifications, fall between them).
	want := [][2]string{{"order", "ORDER_CREATED"}, {"inventory", "STOCK_RESERVED"}, {"payment", "PAYMENT_PROCESSED"},
		{"inventory", "INVENTORY_UPDATED"}, {"shipping", "SHIPMENT_CREATED"}, {"order", "ORDER_COMPLETED"}}
	next, notified := 0, 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if next < len(want) && f[3] == want[next][0] && f[4] == want[next][1] {
			next++
		}
		if f[3] == "notification" && f[4] == "NOTIFIED" {
			notified++
		}
		if f[4] == "STOCK_RESTORED" || strings.Contains(line, "COMPENSATION") || strings.Contains(line, "FAILED") {
			t.Errorf("a completed saga shows a failure or compensation: %q", line)
		}
	}
	if next != len(want) || notified == 0 {
		t.Errorf("found %d of the %d events in order (next wanted %v), %d notification rows:\n%s", next, len(want), want[min(next, len(want)-1)], notified, out)
	}

	code, out, stderr = sagactl(t, args("--json", orderID)...)
	var tl struct {
		Status   string   `json:"status"`
		Services []string `json:"services"`
		TookMS   float64  `json:"took_ms"`
		Entries  []struct {
			Service, Event, Kind string
			SinceStartMS         float64 `json:"since_start_ms"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &tl); err != nil || code != exitOK {
		t.Fatalf("exit %d, --json: %v\n%s\nstderr:\n%s", code, err, out, stderr)
	}
	var events []string
	last := -1.0
	for _, e := range tl.Entries {
		if e.Kind != "notification" { // a notification's send time may read a little before its event's
			if e.SinceStartMS < last {
				t.Errorf("saga events out of time order: %+v", tl.Entries)
			}
			last = e.SinceStartMS
			events = append(events, e.Service+"/"+e.Event)
		}
	}
	if tl.Status != "COMPLETED" || len(tl.Services) != 5 || tl.TookMS <= 0 ||
		strings.Join(events, " ") != "order/ORDER_CREATED inventory/STOCK_RESERVED payment/PAYMENT_PROCESSED inventory/INVENTORY_UPDATED shipping/SHIPMENT_CREATED order/ORDER_COMPLETED" {
		t.Errorf("--json: status %s, services %v, took %vms, events %v", tl.Status, tl.Services, tl.TookMS, events)
	}

	// The compensated saga: the failure and each compensation marked, from
	// its producer, after the failure.
	code, out, stderr = sagactl(t, args(undeliverable, "--wait", "3m")...)
	if code != exitOK || stderr != "" || !strings.Contains(out, "status CANCELLED (SHIPMENT_FAILED") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	t.Logf("sagactl saga %s:\n%s", undeliverable, out)
	marks := map[string]string{}
	failedAt, compensatedAfter := -1, true
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[3] == "notification" {
			continue
		}
		marks[f[3]+"/"+f[4]] = f[5]
		switch f[5] {
		case "FAILED":
			failedAt = i
		case "COMPENSATION":
			compensatedAfter = compensatedAfter && failedAt >= 0
		}
	}
	for _, want := range []struct{ event, mark string }{{"shipping/SHIPMENT_FAILED", "FAILED"}, {"payment/PAYMENT_REFUNDED", "COMPENSATION"},
		{"inventory/STOCK_RESTORED", "COMPENSATION"}, {"order/ORDER_CANCELLED", "COMPENSATION"}} {
		if marks[want.event] != want.mark {
			t.Errorf("%s marked %q, want %s", want.event, marks[want.event], want.mark)
		}
	}
	if !compensatedAfter {
		t.Errorf("a compensation before the failure:\n%s", out)
	}

	unknown := uuid.Must(uuid.NewV7()).String()
	code, out, stderr = sagactl(t, args(unknown)...)
	if code != exitError || out != "" || !strings.Contains(stderr, "order "+unknown+" not found") {
		t.Errorf("unknown order: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}
