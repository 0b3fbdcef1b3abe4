package determinism_test

import (
	"strings"
	"testing"

	"github.com/sagasuite/sagasuite/tools/internal/determinism"
)

// root is the repository root, from this package's directory.
const root = "../../.."

// Packages are the handler, use-case and domain packages held to the rules.
// A package here with a violation fails the test.
var Packages = []string{
	"services/order/internal/app",
	"services/order/internal/domain/...",
	"services/order/internal/ports",
	"services/inventory/internal/app",
	"services/inventory/internal/domain/...",
	"services/inventory/internal/ports",
	"services/payment/internal/app",
	"services/payment/internal/domain/...",
	"services/payment/internal/ports",
	"services/shipping/internal/app",
	"services/shipping/internal/domain/...",
	"services/shipping/internal/ports",
	"services/notification/internal/app",
	"services/notification/internal/domain/...",
	"services/notification/internal/ports",
}

// Allowed are the legitimate exceptions, each with why: a command whose
// caller gave no id to derive from gets a fresh one (the caller cannot
// retry or replay it exactly; clients that need to send a request id).
var Allowed = map[string]string{
	"services/order/internal/app/create_order.go:CreateOrderHandler.Handle:events.NewID": "CreateOrder without request_id: nothing names the order",
	"services/order/internal/app/cancel_order.go:CancelOrderHandler.Handle:events.NewID": "CancelOrder without request_id: nothing names the command",
}

// The services' event handling reads no wall clock and draws no random id,
// outside the allow-list; every allow-list entry is still needed.
func TestServicesFollowTheDeterminismRules(t *testing.T) {
	violations, err := determinism.Check(root, Packages)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, v := range violations {
		if _, ok := Allowed[v.Key()]; ok {
			used[v.Key()] = true
			continue
		}
		t.Errorf("%s — see services/README.md, Determinism", v)
	}
	for key := range Allowed {
		if !used[key] {
			t.Errorf("allow-list entry %s matches no call any more: remove it", key)
		}
	}
}

// The checker finds what it must (under any import name, in methods and
// closures) and nothing else.
func TestCheckerFindsPlantedViolations(t *testing.T) {
	src := `package p

import (
	"time"
	u "github.com/google/uuid"
	"github.com/sagasuite/sagasuite/libs/events"
	"math/rand/v2"
)

type H struct{ now func() time.Time }

func (h *H) Handle() {
	_ = time.Now()
	f := func() string { return u.NewString() }
	_ = f
	_ = events.NewID()
	_ = events.DeriveID("c", 1)
	_ = rand.IntN(3)
	_ = u.NewSHA1(u.Nil, nil)
	var d time.Duration
	_ = d
}

func Free() { _ = time.Since(time.Time{}) }
`
	vs, err := determinism.CheckSource("p/p.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vs {
		got = append(got, v.Key())
	}
	want := []string{"p/p.go:H.Handle:time.Now", "p/p.go:H.Handle:u.NewString", "p/p.go:H.Handle:events.NewID",
		"p/p.go:H.Handle:rand.IntN", "p/p.go:Free:time.Since"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := determinism.Check(root, []string{"services/no-such-service"}); err == nil {
		t.Error("Check of a missing directory: no error")
	}
}
