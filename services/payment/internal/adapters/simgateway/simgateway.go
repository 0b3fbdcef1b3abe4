// Package simgateway is the built-in simulated payment gateway: in-process,
// deterministic and idempotent by key, so sagas can be driven into every
// payment outcome on purpose, and a replay (or a handler re-run after a crash)
// decides exactly as the first run did.
//
// Decline rules, checked in this order (the first that matches decides):
//
//	payment token "tok_decline"                → DECLINED,               code "card_declined"
//	payment token "tok_insufficient_funds"     → INSUFFICIENT_FUNDS,     code "insufficient_funds"
//	payment token "tok_expired"                → INVALID_PAYMENT_METHOD, code "expired_card"
//	payment token "tok_processor_unavailable"  → PROCESSOR_UNAVAILABLE,  code "processor_unavailable"
//	amount above AmountLimitMinor (1,000,000)  → DECLINED,               code "amount_limit_exceeded"
//	share(key) < FailureRate                   → DECLINED,               code "simulated_failure"
//	anything else                              → approved
//
// share(key) maps the idempotency key (the order id) to [0, 1) through SHA-256, so
// PAYMENT_GATEWAY_FAILURE_RATE=0.2 declines about a fifth of orders, always the
// same ones. Charge and refund ids are UUIDv5s derived from the key, so a
// second call with the same key returns the same id: the result is a pure
// function of (key, amount, token). Refunds always succeed.
package simgateway

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"

	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// Tokens with a fixed outcome.
const (
	TokenDecline              = "tok_decline"
	TokenInsufficientFunds    = "tok_insufficient_funds"
	TokenExpired              = "tok_expired"
	TokenProcessorUnavailable = "tok_processor_unavailable"
)

// AmountLimitMinor is the largest amount (minor units) the gateway approves.
const AmountLimitMinor = 1_000_000

var tokenDeclines = map[string]payment.Decline{
	TokenDecline:              {Reason: payment.FailureDeclined, Code: "card_declined", Detail: "the card issuer declined the charge"},
	TokenInsufficientFunds:    {Reason: payment.FailureInsufficientFunds, Code: "insufficient_funds", Detail: "the payment method lacks funds"},
	TokenExpired:              {Reason: payment.FailureInvalidPaymentMethod, Code: "expired_card", Detail: "the card has expired"},
	TokenProcessorUnavailable: {Reason: payment.FailureProcessorUnavailable, Code: "processor_unavailable", Detail: "the processor could not be reached"},
}

// idNamespace scopes the gateway's derived ids.
var idNamespace = uuid.MustParse("3c6d1f0a-5b7e-4e8a-9d2c-7f1e0b4a6c85")

// Gateway is the simulated gateway; safe for concurrent use (it keeps no state).
type Gateway struct {
	failureRate float64
}

// New returns a gateway that also declines the share failureRate ∈ [0, 1] of keys.
func New(failureRate float64) (*Gateway, error) {
	if math.IsNaN(failureRate) || failureRate < 0 || failureRate > 1 {
		return nil, fmt.Errorf("simgateway: failure rate %v is not in [0, 1]", failureRate)
	}
	return &Gateway{failureRate: failureRate}, nil
}

// Charge decides a charge of amount on token under idempotencyKey. It returns
// the charge id, or a *payment.Decline.
func (g *Gateway) Charge(ctx context.Context, idempotencyKey string, amount payment.Money, token string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if idempotencyKey == "" {
		return "", errors.New("simgateway: charge needs an idempotency key")
	}
	if d, ok := tokenDeclines[token]; ok {
		return "", &d
	}
	if amount.AmountMinor > AmountLimitMinor {
		return "", &payment.Decline{Reason: payment.FailureDeclined, Code: "amount_limit_exceeded",
			Detail: fmt.Sprintf("amount %d %s is above the limit of %d", amount.AmountMinor, amount.Currency, AmountLimitMinor)}
	}
	if Share(idempotencyKey) < g.failureRate {
		return "", &payment.Decline{Reason: payment.FailureDeclined, Code: "simulated_failure",
			Detail: fmt.Sprintf("declined by the simulated failure rate %v", g.failureRate)}
	}
	return uuid.NewSHA1(idNamespace, []byte("charge/"+idempotencyKey)).String(), nil
}

// Refund pays amount of chargeID back under idempotencyKey and returns the
// refund id. The simulator approves every refund.
func (g *Gateway) Refund(ctx context.Context, idempotencyKey, chargeID string, amount payment.Money) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if idempotencyKey == "" || chargeID == "" {
		return "", errors.New("simgateway: refund needs an idempotency key and a charge id")
	}
	return uuid.NewSHA1(idNamespace, []byte("refund/"+idempotencyKey)).String(), nil
}

// Share maps a key to [0, 1), uniformly and always the same way.
func Share(key string) float64 {
	sum := sha256.Sum256([]byte("failure-rate/" + key))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}
