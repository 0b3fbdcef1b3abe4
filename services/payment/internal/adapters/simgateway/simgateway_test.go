package simgateway_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/google/uuid"

	"github.com/sagasuite/sagasuite/services/payment/internal/adapters/simgateway"
	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

const key = "0190a000-0000-7000-8000-000000000001"

func eur(n int64) payment.Money { return payment.Money{AmountMinor: n, Currency: "EUR"} }

func TestDeclineRules(t *testing.T) {
	tests := []struct {
		name       string
		token      string
		amount     int64
		wantReason payment.FailureReason // "" = approved
		wantCode   string
	}{
		{"any other token is approved", "tok_visa", 2500, "", ""},
		{"zero amount is approved", "tok_visa", 0, "", ""},
		{"tok_decline", simgateway.TokenDecline, 2500, payment.FailureDeclined, "card_declined"},
		{"tok_insufficient_funds", simgateway.TokenInsufficientFunds, 2500, payment.FailureInsufficientFunds, "insufficient_funds"},
		{"tok_expired", simgateway.TokenExpired, 2500, payment.FailureInvalidPaymentMethod, "expired_card"},
		{"tok_processor_unavailable", simgateway.TokenProcessorUnavailable, 2500, payment.FailureProcessorUnavailable, "processor_unavailable"},
		{"amount at the limit is approved", "tok_visa", simgateway.AmountLimitMinor, "", ""},
		{"amount above the limit", "tok_visa", simgateway.AmountLimitMinor + 1, payment.FailureDeclined, "amount_limit_exceeded"},
		{"a token rule wins over the amount limit", simgateway.TokenExpired, simgateway.AmountLimitMinor + 1, payment.FailureInvalidPaymentMethod, "expired_card"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := simgateway.New(0) // a fresh ledger: the key is reused
			if err != nil {
				t.Fatal(err)
			}
			chargeID, err := g.Charge(context.Background(), key, eur(tt.amount), tt.token)
			var decline *payment.Decline
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("declined: %v", err)
				}
				if _, perr := uuid.Parse(chargeID); perr != nil {
					t.Fatalf("charge id %q is not a UUID", chargeID)
				}
				return
			}
			if !errors.As(err, &decline) {
				t.Fatalf("err = %v (charge %q), want a *payment.Decline", err, chargeID)
			}
			if decline.Reason != tt.wantReason || decline.Code != tt.wantCode || decline.Detail == "" {
				t.Fatalf("decline = %+v, want %s/%s with a detail", decline, tt.wantReason, tt.wantCode)
			}
		})
	}
}

func TestIdempotentByKey(t *testing.T) {
	g, _ := simgateway.New(0)
	ctx := context.Background()
	first, err := g.Charge(ctx, key, eur(100), "tok_visa")
	if err != nil {
		t.Fatal(err)
	}
	again, err := g.Charge(ctx, key, eur(100), "tok_visa")
	if err != nil || again != first {
		t.Fatalf("second charge with the same key = %q, %v; want %q", again, err, first)
	}
	other, _ := g.Charge(ctx, key+"x", eur(100), "tok_visa")
	if other == first {
		t.Fatal("different keys gave the same charge id")
	}
	// A fresh gateway (a restarted process) answers the same.
	g2, _ := simgateway.New(0)
	if restarted, _ := g2.Charge(ctx, key, eur(100), "tok_visa"); restarted != first {
		t.Fatalf("after restart charge id = %q, want %q", restarted, first)
	}
	r1, err := g.Refund(ctx, key, first, eur(100))
	if err != nil {
		t.Fatal(err)
	}
	if r2, _ := g.Refund(ctx, key, first, eur(100)); r2 != r1 || r1 == first {
		t.Fatalf("refund ids %q, %q (charge %q): want equal and distinct from the charge", r1, r2, first)
	}
	if _, err := g.Charge(ctx, "", eur(100), "tok_visa"); err == nil {
		t.Fatal("charge without a key accepted")
	}
	if _, err := g.Refund(ctx, key, "", eur(100)); err == nil {
		t.Fatal("refund without a charge id accepted")
	}
}

func TestFailureRateIsDeterministic(t *testing.T) {
	ctx := context.Background()
	decide := func(g *simgateway.Gateway, k string) bool {
		_, err := g.Charge(ctx, k, eur(100), "tok_visa")
		var d *payment.Decline
		if err != nil && !errors.As(err, &d) {
			t.Fatalf("charge %s: %v", k, err)
		}
		if d != nil && d.Code != "simulated_failure" {
			t.Fatalf("charge %s: unexpected decline %+v", k, d)
		}
		return d != nil
	}
	const n = 4000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = uuid.NewSHA1(uuid.NameSpaceURL, fmt.Appendf(nil, "order-%d", i)).String()
	}
	for _, rate := range []float64{0, 0.25, 0.5, 1} {
		a, _ := simgateway.New(rate)
		b, _ := simgateway.New(rate)
		declined := 0
		for _, k := range keys {
			first := decide(a, k)
			if decide(a, k) != first || decide(b, k) != first {
				t.Fatalf("rate %v: key %s decided differently on replay", rate, k)
			}
			if first {
				declined++
			}
		}
		share := float64(declined) / n
		// Binomial standard deviation at n=4000 is ≤ 0.8 %; allow 4σ.
		if math.Abs(share-rate) > 0.032 {
			t.Errorf("rate %v declined a share of %.3f", rate, share)
		}
	}
	// A key declined at a lower rate is declined at every higher rate.
	low, _ := simgateway.New(0.1)
	high, _ := simgateway.New(0.3)
	for _, k := range keys {
		if decide(low, k) && !decide(high, k) {
			t.Fatalf("key %s declined at 0.1 but approved at 0.3", k)
		}
	}
}

func TestNewRejectsRatesOutsideZeroToOne(t *testing.T) {
	for _, rate := range []float64{-0.01, 1.01, math.NaN()} {
		if _, err := simgateway.New(rate); err == nil {
			t.Errorf("New(%v) accepted", rate)
		}
	}
}
