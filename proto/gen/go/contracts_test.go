// Package gen_test checks the contracts module: the committed Go code matches
// what buf generates from proto/, and the protovalidate rules in the schemas
// accept valid messages and reject invalid ones with the offending field named.
package gen_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
)

// genDir is this module's directory relative to the repository root; buf.gen.yaml
// writes there.
const genDir = "proto/gen/go"

// repoRoot is the repository root: this test runs in proto/gen/go.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "buf.gen.yaml")); err != nil {
		t.Fatalf("repository root %s has no buf.gen.yaml: %v", root, err)
	}
	return root
}

// findBuf locates the pinned buf the way the Makefile installs it:
// $SAGASUITE_BUF, $SAGASUITE_HOME/bin/buf, ~/.cache/sagasuite/bin/buf, then PATH.
func findBuf(t *testing.T) string {
	t.Helper()
	var candidates []string
	if p := os.Getenv("SAGASUITE_BUF"); p != "" {
		candidates = append(candidates, p)
	}
	if home := os.Getenv("SAGASUITE_HOME"); home != "" {
		candidates = append(candidates, filepath.Join(home, "bin", "buf"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".cache", "sagasuite", "bin", "buf"))
	}
	for _, c := range candidates {
		if info, err := os.Stat(c); err == nil && !info.IsDir() {
			return c
		}
	}
	if p, err := exec.LookPath("buf"); err == nil {
		return p
	}
	t.Fatalf("buf not found (looked at $SAGASUITE_BUF, %v and PATH): run make proto-tools", candidates)
	return ""
}

// TestGeneratedCodeIsFresh regenerates Go from proto/ with the committed
// buf.gen.yaml into a temporary directory and compares it, file by file, with
// the committed tree under proto/gen/go.
func TestGeneratedCodeIsFresh(t *testing.T) {
	root := repoRoot(t)
	buf := findBuf(t)
	include := filepath.Join(root, ".build", "proto-include", "buf", "validate", "validate.proto")
	if _, err := os.Stat(include); err != nil {
		t.Fatalf("protovalidate's schema is missing (%v): run make proto-include", err)
	}

	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// --output prefixes every plugin's out dir, so the template is used unchanged.
	cmd := exec.CommandContext(ctx, buf, "generate", "--output", out)
	cmd.Dir = root
	// The pinned plugins sit next to the pinned buf (make proto-tools); prefer them.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(buf)+string(os.PathListSeparator)+os.Getenv("PATH"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s generate: %v\n%s\n(run make proto-tools proto-include)", buf, err, stderr.String())
	}

	fresh := readTree(t, filepath.Join(out, genDir), func(string) bool { return true })
	if len(fresh) == 0 {
		t.Fatalf("buf generate wrote nothing under %s", filepath.Join(out, genDir))
	}
	// Generated files are everything under sagasuite/ (make proto replaces that
	// tree) and any *.pb.go elsewhere in the module.
	committed := readTree(t, filepath.Join(root, genDir), func(rel string) bool {
		return strings.HasPrefix(rel, "sagasuite/") || strings.HasSuffix(rel, ".pb.go")
	})

	var stale []string
	for rel, want := range fresh {
		got, ok := committed[rel]
		switch {
		case !ok:
			stale = append(stale, "missing: "+rel)
		case !bytes.Equal(got, want):
			stale = append(stale, "differs: "+rel)
		}
	}
	for rel := range committed {
		if _, ok := fresh[rel]; !ok {
			stale = append(stale, "extra (no longer generated): "+rel)
		}
	}
	if len(stale) > 0 {
		slices.Sort(stale)
		t.Errorf("generated code in %s is stale; run make proto and commit the result:\n  %s",
			genDir, strings.Join(stale, "\n  "))
	}
}

// readTree returns the regular files below dir accepted by keep, by slash path
// relative to dir.
func readTree(t *testing.T, dir string, keep func(rel string) bool) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == dir {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !keep(rel) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[rel] = data
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return files
}

const (
	orderID     = "0190a5b4-3c2d-7e8f-9a0b-1c2d3e4f5a6b"
	customerID  = "0190a5b4-0000-7000-8000-00000000c001"
	eventID     = "0190a5b4-3c2d-7e8f-9a0b-000000000e01"
	causationID = "0190a5b4-3c2d-7e8f-9a0b-000000000c01"
	requestID   = "0190a5b4-3c2d-7e8f-9a0b-000000000a01"
)

func validAddress() *commonv1.Address {
	return &commonv1.Address{
		Name:        "Ada Lovelace",
		Line1:       "12 St James's Square",
		City:        "London",
		PostalCode:  "SW1Y 4JH",
		CountryCode: "GB",
	}
}

func validLines() []*commonv1.LineItem {
	return []*commonv1.LineItem{
		{Sku: "TSHIRT-RED-M", Quantity: 2, UnitPriceMinor: 1999},
		{Sku: "MUG-01", Quantity: 1, UnitPriceMinor: 850},
	}
}

func validCreateOrder() *orderv1.CreateOrderRequest {
	return &orderv1.CreateOrderRequest{
		CustomerId:         customerID,
		Lines:              validLines(),
		Currency:           "EUR",
		ShippingAddress:    validAddress(),
		PaymentMethodToken: "tok_visa_4242",
	}
}

func validEnvelope() *eventsv1.Envelope {
	return &eventsv1.Envelope{
		EventId:       eventID,
		Type:          eventsv1.EventType_EVENT_TYPE_ORDER_CREATED,
		OrderId:       orderID,
		CustomerId:    customerID,
		OccurredAt:    timestamppb.New(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)),
		Producer:      "order",
		CausationId:   causationID,
		SchemaVersion: 1,
		Payload: &eventsv1.Envelope_OrderCreated{OrderCreated: &eventsv1.OrderCreated{
			Lines:              validLines(),
			Total:              &commonv1.Money{AmountMinor: 4848, Currency: "EUR"},
			ShippingAddress:    validAddress(),
			PaymentMethodToken: "tok_visa_4242",
			Deadline:           timestamppb.New(time.Date(2026, 11, 24, 12, 15, 0, 0, time.UTC)),
		}},
	}
}

func newValidator(t *testing.T) protovalidate.Validator {
	t.Helper()
	v, err := protovalidate.New()
	if err != nil {
		t.Fatalf("protovalidate.New: %v", err)
	}
	return v
}

func TestValidMessagesPass(t *testing.T) {
	v := newValidator(t)
	withRequestID := validCreateOrder()
	withRequestID.RequestId = requestID
	refunded := validEnvelope()
	refunded.Type = eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED
	refunded.Producer = "payment"
	refunded.Payload = &eventsv1.Envelope_PaymentRefunded{PaymentRefunded: &eventsv1.PaymentRefunded{
		PaymentId: requestID,
		RefundId:  causationID,
		Amount:    &commonv1.Money{AmountMinor: 4848, Currency: "EUR"},
		Reason:    eventsv1.RefundReason_REFUND_REASON_SHIPMENT_FAILED,
	}}
	completed := validEnvelope()
	completed.Type = eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED
	completed.Payload = &eventsv1.Envelope_OrderCompleted{OrderCompleted: &eventsv1.OrderCompleted{}}

	for name, msg := range map[string]proto.Message{
		"CreateOrderRequest":                 validCreateOrder(),
		"CreateOrderRequest with request_id": withRequestID,
		"Envelope ORDER_CREATED":             validEnvelope(),
		"Envelope PAYMENT_REFUNDED":          refunded,
		"Envelope ORDER_COMPLETED (empty)":   completed,
		"ListOrdersRequest default page":     &orderv1.ListOrdersRequest{CustomerId: customerID},
		"AddStockRequest": &inventoryv1.AddStockRequest{
			Sku: "MUG-01", Quantity: 10, RequestId: requestID,
		},
		"UpsertProductRequest": &inventoryv1.UpsertProductRequest{
			Sku: "MUG-01", Name: "Mug", UnitPrice: &commonv1.Money{AmountMinor: 850, Currency: "EUR"},
		},
		"ListPaymentsRequest":      &paymentv1.ListPaymentsRequest{CustomerId: customerID, PageSize: 100},
		"GetShipmentRequest":       &shippingv1.GetShipmentRequest{OrderId: orderID},
		"ListNotificationsRequest": &notificationv1.ListNotificationsRequest{CustomerId: customerID, PageSize: 1},
	} {
		t.Run(name, func(t *testing.T) {
			if err := v.Validate(msg); err != nil {
				t.Errorf("valid %s rejected: %v", name, err)
			}
		})
	}
}

func TestInvalidMessagesFail(t *testing.T) {
	v := newValidator(t)
	createOrder := func(mutate func(*orderv1.CreateOrderRequest)) proto.Message {
		m := validCreateOrder()
		mutate(m)
		return m
	}
	envelope := func(mutate func(*eventsv1.Envelope)) proto.Message {
		m := validEnvelope()
		mutate(m)
		return m
	}

	tests := []struct {
		name string
		msg  proto.Message
		// wantField is the violated field path; wantRule, when set, the rule id
		// (message-level rules have no field path).
		wantField string
		wantRule  string
	}{
		{"order without customer_id", createOrder(func(m *orderv1.CreateOrderRequest) { m.CustomerId = "" }), "customer_id", "string.uuid_empty"},
		{"order with bad customer uuid", createOrder(func(m *orderv1.CreateOrderRequest) { m.CustomerId = "customer-42" }), "customer_id", "string.uuid"},
		{"order without lines", createOrder(func(m *orderv1.CreateOrderRequest) { m.Lines = nil }), "lines", "repeated.min_items"},
		{"order line quantity 0", createOrder(func(m *orderv1.CreateOrderRequest) { m.Lines[1].Quantity = 0 }), "lines[1].quantity", "int32.gt_lte"},
		{"order line bad sku", createOrder(func(m *orderv1.CreateOrderRequest) { m.Lines[0].Sku = "t shirt" }), "lines[0].sku", "string.pattern"},
		{"order duplicate sku", createOrder(func(m *orderv1.CreateOrderRequest) { m.Lines[1].Sku = m.Lines[0].Sku }), "lines", "create_order.lines_unique_sku"},
		{"order bad currency", createOrder(func(m *orderv1.CreateOrderRequest) { m.Currency = "euro" }), "currency", "string.pattern"},
		{"order without address", createOrder(func(m *orderv1.CreateOrderRequest) { m.ShippingAddress = nil }), "shipping_address", "required"},
		{"order bad country code", createOrder(func(m *orderv1.CreateOrderRequest) { m.ShippingAddress.CountryCode = "GBR" }), "shipping_address.country_code", "string.pattern"},
		{"order without payment token", createOrder(func(m *orderv1.CreateOrderRequest) { m.PaymentMethodToken = "" }), "payment_method_token", "string.min_len"},
		{"order bad request_id", createOrder(func(m *orderv1.CreateOrderRequest) { m.RequestId = "retry-1" }), "request_id", "string.uuid"},
		{"list orders page_size too big", &orderv1.ListOrdersRequest{CustomerId: customerID, PageSize: 1000}, "page_size", "int32.gte_lte"},
		{"add stock quantity 0", &inventoryv1.AddStockRequest{Sku: "MUG-01", RequestId: requestID}, "quantity", "int32.gt_lte"},
		{"add stock without request_id", &inventoryv1.AddStockRequest{Sku: "MUG-01", Quantity: 1}, "request_id", "string.uuid_empty"},
		{"upsert product bad price currency", &inventoryv1.UpsertProductRequest{
			Sku: "MUG-01", Name: "Mug", UnitPrice: &commonv1.Money{AmountMinor: 850, Currency: "eur"},
		}, "unit_price.currency", "string.pattern"},
		{"get saga log bad order id", &notificationv1.GetSagaLogRequest{OrderId: "42"}, "order_id", "string.uuid"},
		{"envelope without payload", envelope(func(m *eventsv1.Envelope) { m.Payload = nil }), "payload", "required"},
		{"envelope payload not matching type", envelope(func(m *eventsv1.Envelope) { m.Type = eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED }), "", "envelope.payload_matches_type"},
		{"envelope type unspecified", envelope(func(m *eventsv1.Envelope) { m.Type = eventsv1.EventType_EVENT_TYPE_UNSPECIFIED }), "type", "enum.not_in"},
		{"envelope type undefined", envelope(func(m *eventsv1.Envelope) { m.Type = 99 }), "type", "enum.defined_only"},
		{"envelope bad event_id", envelope(func(m *eventsv1.Envelope) { m.EventId = "not-a-uuid" }), "event_id", "string.uuid"},
		{"envelope without occurred_at", envelope(func(m *eventsv1.Envelope) { m.OccurredAt = nil }), "occurred_at", "required"},
		{"envelope schema_version 0", envelope(func(m *eventsv1.Envelope) { m.SchemaVersion = 0 }), "schema_version", "uint32.gte"},
		{"envelope payload invalid", envelope(func(m *eventsv1.Envelope) {
			m.GetOrderCreated().Total.Currency = "€"
		}), "order_created.total.currency", "string.pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Validate(tt.msg)
			var verr *protovalidate.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want a validation error on %q, got %v", tt.wantField, err)
			}
			if tt.wantField != "" && !strings.Contains(err.Error(), tt.wantField+": ") {
				t.Errorf("error does not name field %q: %v", tt.wantField, err)
			}
			for _, violation := range verr.Violations {
				if protovalidate.FieldPathString(violation.Proto.GetField()) == tt.wantField &&
					violation.Proto.GetRuleId() == tt.wantRule {
					return
				}
			}
			t.Errorf("no violation of rule %q on field %q in: %v", tt.wantRule, tt.wantField, err)
		})
	}
}
