// Package simgateway is the built-in simulated payment gateway. It behaves
// like a real processor where the payment service must care: it keeps its
// OWN ledger of charges and refunds by idempotency key (in memory, or in an
// append-only file that survives restarts), a second call with a key it has
// seen returns the first call's result, a status lookup by key says what
// happened, and it can be told to fail the way remote processors do: slow
// calls, transient 5xx (nothing happened), and timeouts with an unknown
// outcome (the call may or may not have been applied).
//
// It runs in-process (Gateway implements the payment app's Gateway) or as a
// small HTTP server (Handler; Client is the payment side of it), so several
// payment replicas share one gateway and one ledger, as they would share a
// real processor.
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
// same ones. Charge and refund ids are UUIDv5s derived from the key. Refunds
// of a captured charge always succeed.
package simgateway

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

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

var (
	// ErrUnknownOutcome: the call timed out or its connection broke; the
	// gateway may or may not have applied it. A lookup by key (or the same
	// call again, same key) tells.
	ErrUnknownOutcome = errors.New("gateway: outcome unknown (timeout)")
	// ErrUnavailable: a transient 5xx; the call was not applied.
	ErrUnavailable = errors.New("gateway: temporarily unavailable (5xx)")
	// ErrNotFound: the gateway has no record under the key.
	ErrNotFound = errors.New("gateway: no record for the idempotency key")
	// ErrRejected: a request the gateway refuses whatever the retry (a key
	// reused with other parameters, a refund of an unknown charge).
	ErrRejected = errors.New("gateway: request rejected")
)

// Faults are the failure modes a remote processor has, each a share of the
// calls in [0, 1], drawn from a generator seeded with Seed (the same seed and
// call order fail the same calls).
type Faults struct {
	// ErrorRate: calls answered with a transient 5xx before anything happens.
	ErrorRate float64
	// TimeoutRate: calls whose caller never hears back; half of them (by
	// the same generator) were applied first.
	TimeoutRate float64
	// SlowRate of the calls wait SlowDelay before they are processed.
	SlowRate  float64
	SlowDelay time.Duration
	Seed      uint64
}

// Validate names the field at fault.
func (f Faults) Validate() error {
	var errs []error
	for _, r := range []struct {
		name string
		v    float64
	}{{"error rate", f.ErrorRate}, {"timeout rate", f.TimeoutRate}, {"slow rate", f.SlowRate}} {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			errs = append(errs, fmt.Errorf("simgateway: %s %v is not in [0, 1]", r.name, r.v))
		}
	}
	if f.SlowDelay < 0 {
		errs = append(errs, fmt.Errorf("simgateway: slow delay %v is negative", f.SlowDelay))
	}
	return errors.Join(errs...)
}

// fault is what the generator decided for one call.
type fault int

const (
	faultNone fault = iota
	faultUnavailable
	faultTimeoutBefore // not applied
	faultTimeoutAfter  // applied, answer lost
)

// Config configures a Gateway.
type Config struct {
	FailureRate float64
	// LedgerPath is the ledger's append-only file ("" keeps it in memory).
	LedgerPath string
	Faults     Faults
}

// Gateway is the simulated processor; safe for concurrent use.
type Gateway struct {
	failureRate float64
	faults      Faults
	ledger      *Ledger

	rndMu sync.Mutex
	rnd   *rand.Rand
}

// New returns an in-memory gateway without faults that also declines the
// share failureRate ∈ [0, 1] of keys.
func New(failureRate float64) (*Gateway, error) {
	return Open(Config{FailureRate: failureRate})
}

// Open returns a gateway with cfg's ledger and faults. Close releases the
// ledger file.
func Open(cfg Config) (*Gateway, error) {
	if math.IsNaN(cfg.FailureRate) || cfg.FailureRate < 0 || cfg.FailureRate > 1 {
		return nil, fmt.Errorf("simgateway: failure rate %v is not in [0, 1]", cfg.FailureRate)
	}
	if err := cfg.Faults.Validate(); err != nil {
		return nil, err
	}
	ledger, err := OpenLedger(cfg.LedgerPath)
	if err != nil {
		return nil, err
	}
	return &Gateway{failureRate: cfg.FailureRate, faults: cfg.Faults, ledger: ledger,
		rnd: rand.New(rand.NewPCG(cfg.Faults.Seed, cfg.Faults.Seed^0x9e3779b97f4a7c15))}, nil
}

// Close closes the ledger.
func (g *Gateway) Close() error { return g.ledger.Close() }

// Ledger is the gateway's own record of money moved.
func (g *Gateway) Ledger() *Ledger { return g.ledger }

// draw decides the fault and the delay of one call.
func (g *Gateway) draw() (fault, time.Duration) {
	if g.faults == (Faults{Seed: g.faults.Seed}) {
		return faultNone, 0
	}
	g.rndMu.Lock()
	defer g.rndMu.Unlock()
	var delay time.Duration
	if g.rnd.Float64() < g.faults.SlowRate {
		delay = g.faults.SlowDelay
	}
	switch {
	case g.rnd.Float64() < g.faults.ErrorRate:
		return faultUnavailable, delay
	case g.rnd.Float64() < g.faults.TimeoutRate:
		if g.rnd.IntN(2) == 0 {
			return faultTimeoutBefore, delay
		}
		return faultTimeoutAfter, delay
	}
	return faultNone, delay
}

// withFaults runs apply as a remote call would: maybe slow, maybe refused
// before it happens, maybe applied with the answer lost. A slow call is
// processed after its delay even when the caller gave up meanwhile, as a
// real server goes on with a request whose client has left.
func (g *Gateway) withFaults(ctx context.Context, apply func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, delay := g.draw()
	if delay > 0 {
		time.Sleep(delay)
	}
	switch f {
	case faultUnavailable:
		return ErrUnavailable
	case faultTimeoutBefore:
		return ErrUnknownOutcome
	case faultTimeoutAfter:
		if err := apply(); err != nil {
			return err
		}
		return ErrUnknownOutcome
	}
	return apply()
}

// decide is the decline rules: nil means approved.
func (g *Gateway) decide(key string, amount payment.Money, token string) *payment.Decline {
	if d, ok := tokenDeclines[token]; ok {
		return &d
	}
	if amount.AmountMinor > AmountLimitMinor {
		return &payment.Decline{Reason: payment.FailureDeclined, Code: "amount_limit_exceeded",
			Detail: fmt.Sprintf("amount %d %s is above the limit of %d", amount.AmountMinor, amount.Currency, AmountLimitMinor)}
	}
	if Share(key) < g.failureRate {
		return &payment.Decline{Reason: payment.FailureDeclined, Code: "simulated_failure",
			Detail: fmt.Sprintf("declined by the simulated failure rate %v", g.failureRate)}
	}
	return nil
}

// Charge charges amount on token under idempotencyKey and returns the charge
// id, a *payment.Decline, ErrUnavailable, ErrUnknownOutcome or another error.
// A key seen before returns the first call's result.
func (g *Gateway) Charge(ctx context.Context, idempotencyKey string, amount payment.Money, token string) (string, error) {
	if idempotencyKey == "" {
		return "", fmt.Errorf("%w: charge needs an idempotency key", ErrRejected)
	}
	var rec ChargeRecord
	err := g.withFaults(ctx, func() error {
		var err error
		rec, err = g.ledger.charge(idempotencyKey, amount, func() ChargeRecord {
			rec := ChargeRecord{Key: idempotencyKey, AmountMinor: amount.AmountMinor, Currency: amount.Currency, At: time.Now().UTC()}
			if d := g.decide(idempotencyKey, amount, token); d != nil {
				rec.Status, rec.DeclineReason, rec.DeclineCode, rec.DeclineDetail = StatusDeclined, string(d.Reason), d.Code, d.Detail
			} else {
				rec.Status, rec.ChargeID = StatusSucceeded, uuid.NewSHA1(idNamespace, []byte("charge/"+idempotencyKey)).String()
			}
			return rec
		})
		return err
	})
	if err != nil {
		return "", err
	}
	return rec.Result()
}

// Refund pays amount of chargeID back under idempotencyKey and returns the
// refund id; errors as Charge's. A key seen before returns the first result.
func (g *Gateway) Refund(ctx context.Context, idempotencyKey, chargeID string, amount payment.Money) (string, error) {
	if idempotencyKey == "" || chargeID == "" {
		return "", fmt.Errorf("%w: refund needs an idempotency key and a charge id", ErrRejected)
	}
	var rec RefundRecord
	err := g.withFaults(ctx, func() error {
		var err error
		rec, err = g.ledger.refund(idempotencyKey, chargeID, amount, uuid.NewSHA1(idNamespace, []byte("refund/"+idempotencyKey)).String())
		return err
	})
	if err != nil {
		return "", err
	}
	return rec.RefundID, nil
}

// LookupCharge returns what the charge under key came to (ErrNotFound: no
// charge was applied under it). Lookups fail only with transient 5xx.
func (g *Gateway) LookupCharge(ctx context.Context, key string) (ChargeRecord, error) {
	if err := g.lookupFault(ctx); err != nil {
		return ChargeRecord{}, err
	}
	return g.ledger.Charge(key)
}

// LookupRefund returns the refund made under key (ErrNotFound: none).
func (g *Gateway) LookupRefund(ctx context.Context, key string) (RefundRecord, error) {
	if err := g.lookupFault(ctx); err != nil {
		return RefundRecord{}, err
	}
	return g.ledger.Refund(key)
}

func (g *Gateway) lookupFault(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f, _ := g.draw(); f == faultUnavailable {
		return ErrUnavailable
	}
	return nil
}

// Share maps a key to [0, 1), uniformly and always the same way.
func Share(key string) float64 {
	sum := sha256.Sum256([]byte("failure-rate/" + key))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}
