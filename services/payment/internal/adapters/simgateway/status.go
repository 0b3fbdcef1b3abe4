package simgateway

import (
	"context"

	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// The payment app's status lookups, over either side of the gateway.

type lookuper interface {
	LookupCharge(ctx context.Context, key string) (ChargeRecord, error)
	LookupRefund(ctx context.Context, key string) (RefundRecord, error)
}

func chargeStatus(l lookuper, ctx context.Context, key string) (payment.ChargeOutcome, bool, error) {
	rec, err := l.LookupCharge(ctx, key)
	if IsNotFound(err) {
		return payment.ChargeOutcome{}, false, nil
	}
	if err != nil {
		return payment.ChargeOutcome{}, false, err
	}
	chargeID, err := rec.Result()
	if d, ok := err.(*payment.Decline); ok {
		return payment.ChargeOutcome{Decline: d}, true, nil
	}
	return payment.ChargeOutcome{ChargeID: chargeID}, true, nil
}

func refundStatus(l lookuper, ctx context.Context, key string) (string, bool, error) {
	rec, err := l.LookupRefund(ctx, key)
	if IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return rec.RefundID, true, nil
}

// ChargeStatus looks up the charge under key (found false: none).
func (g *Gateway) ChargeStatus(ctx context.Context, key string) (payment.ChargeOutcome, bool, error) {
	return chargeStatus(g, ctx, key)
}

// RefundStatus looks up the refund under key (found false: none).
func (g *Gateway) RefundStatus(ctx context.Context, key string) (string, bool, error) {
	return refundStatus(g, ctx, key)
}

// ChargeStatus looks up the charge under key (found false: none).
func (c *Client) ChargeStatus(ctx context.Context, key string) (payment.ChargeOutcome, bool, error) {
	return chargeStatus(c, ctx, key)
}

// RefundStatus looks up the refund under key (found false: none).
func (c *Client) RefundStatus(ctx context.Context, key string) (string, bool, error) {
	return refundStatus(c, ctx, key)
}
