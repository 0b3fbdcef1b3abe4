package simgateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/services/payment/internal/adapters/simgateway"
	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// The ledger is the gateway's own: it survives a restart of the gateway (its
// file is replayed), answers lookups by key, and refuses to refund more than
// a charge holds or to reuse a key for another amount.
func TestLedgerSurvivesRestartAndRefusesWhatARealGatewayRefuses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	g, err := simgateway.Open(simgateway.Config{LedgerPath: path})
	if err != nil {
		t.Fatal(err)
	}
	chargeID, err := g.Charge(ctx, key, eur(900), "tok_visa")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Charge(ctx, "declined-"+key, eur(900), simgateway.TokenDecline); err == nil {
		t.Fatal("tok_decline approved")
	}
	if _, err := g.Charge(ctx, key, eur(901), "tok_visa"); !errors.Is(err, simgateway.ErrRejected) {
		t.Fatalf("key reused for another amount: %v, want ErrRejected", err)
	}
	if _, err := g.Refund(ctx, "r1", chargeID, eur(901)); !errors.Is(err, simgateway.ErrRejected) {
		t.Fatalf("refund above the charge: %v, want ErrRejected", err)
	}
	if _, err := g.Refund(ctx, "r1", chargeID, eur(900)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Refund(ctx, "r2", chargeID, eur(1)); !errors.Is(err, simgateway.ErrRejected) {
		t.Fatalf("a second refund of a fully refunded charge: %v, want ErrRejected", err)
	}
	must(t, g.Close())
	// A torn last line (a crash mid-append) is cut off on open.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString(`{"charge":{"key":"torn`)
	must(t, err)
	must(t, f.Close())

	g, err = simgateway.Open(simgateway.Config{LedgerPath: path})
	must(t, err)
	defer g.Close()
	acct := g.Ledger().Account(key)
	if acct.Charge == nil || acct.Charge.ChargeID != chargeID || len(acct.Refunds) != 1 || acct.NetMinor != 0 {
		t.Fatalf("after restart the account is %+v, want the charge, one refund, net 0", acct)
	}
	if o, found, err := g.ChargeStatus(ctx, "declined-"+key); err != nil || !found || o.Decline == nil || o.Decline.Code != "card_declined" {
		t.Fatalf("declined charge status %+v %v %v", o, found, err)
	}
	if _, found, err := g.ChargeStatus(ctx, "never"); err != nil || found {
		t.Fatalf("unknown key: found %v, %v", found, err)
	}
	if _, err := g.Charge(ctx, "after-restart", eur(5), "tok_visa"); err != nil {
		t.Fatal(err)
	}
	must(t, g.Close())
	g, err = simgateway.Open(simgateway.Config{LedgerPath: path})
	must(t, err)
	defer g.Close()
	if g.Ledger().Account("after-restart").NetMinor != 5 {
		t.Fatal("a record appended after the torn line was lost")
	}
}

// Faults: a 5xx applies nothing; a timeout leaves the outcome unknown, and
// the lookup by key (or the same call again) tells whether it happened.
// Over HTTP the timeout is a connection closed without an answer.
func TestFaultsOverHTTPLeaveOutcomesAKeyLookupResolves(t *testing.T) {
	ctx := context.Background()
	g, err := simgateway.Open(simgateway.Config{Faults: simgateway.Faults{ErrorRate: 0.2, TimeoutRate: 0.3, SlowRate: 0.1,
		SlowDelay: time.Millisecond, Seed: 7}})
	must(t, err)
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	client, err := simgateway.NewClient(srv.URL, 30*time.Second)
	must(t, err)
	defer client.Close()

	var unavailable, unknown, unknownApplied int
	for i := range 300 {
		k := fmt.Sprintf("order-%d", i)
		_, err := client.Charge(ctx, k, eur(100), "tok_visa")
		_, inLedger := g.Ledger().Charge(k)
		switch {
		case errors.Is(err, simgateway.ErrUnavailable):
			unavailable++
			if inLedger == nil {
				t.Fatalf("%s: a 5xx charged", k)
			}
		case errors.Is(err, simgateway.ErrUnknownOutcome):
			unknown++
			var o payment.ChargeOutcome
			var found bool
			for {
				o, found, err = client.ChargeStatus(ctx, k)
				if !errors.Is(err, simgateway.ErrUnavailable) {
					break
				}
			}
			must(t, err)
			if found != (inLedger == nil) {
				t.Fatalf("%s: lookup found %v, ledger says %v", k, found, inLedger)
			}
			if found {
				unknownApplied++
				if o.ChargeID == "" {
					t.Fatalf("%s: lookup of an applied charge has no id", k)
				}
			}
		case err != nil:
			t.Fatalf("%s: %v", k, err)
		}
	}
	if unavailable == 0 || unknown == 0 || unknownApplied == 0 || unknownApplied == unknown {
		t.Fatalf("seeded faults: %d 5xx, %d unknown (%d applied): every kind should occur", unavailable, unknown, unknownApplied)
	}
	// Retrying the same key until it answers charges once.
	for i := range 300 {
		k := fmt.Sprintf("order-%d", i)
		for {
			if _, err := client.Charge(ctx, k, eur(100), "tok_visa"); err == nil {
				break
			}
		}
		a, err := client.Account(ctx, k)
		must(t, err)
		if a.NetMinor != 100 || a.Charge == nil {
			t.Fatalf("%s: account %+v after retries, want one charge of 100", k, a)
		}
	}
}

func TestConfigRefusesBadFaultsAndURLs(t *testing.T) {
	for _, f := range []simgateway.Faults{{ErrorRate: -1}, {TimeoutRate: 2}, {SlowRate: 1.5}, {SlowDelay: -time.Second}} {
		if _, err := simgateway.Open(simgateway.Config{Faults: f}); err == nil {
			t.Errorf("faults %+v accepted", f)
		}
	}
	for _, u := range []string{"", "ftp://x", "http://", "::"} {
		if _, err := simgateway.NewClient(u, time.Second); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
