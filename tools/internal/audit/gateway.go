package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
)

// GatewayAccount is what the payment gateway's own ledger holds for one
// charge key (the order id): GET {gateway}/v1/accounts/{order id} on the
// simulated gateway (services/payment/README.md).
type GatewayAccount struct {
	Key    string `json:"key"`
	Charge *struct {
		Status      string `json:"status"`
		AmountMinor int64  `json:"amount_minor"`
		Currency    string `json:"currency"`
	} `json:"charge"`
	Refunds []struct {
		AmountMinor int64 `json:"amount_minor"`
	} `json:"refunds"`
	// NetMinor is the money the gateway holds: a succeeded charge minus its refunds.
	NetMinor int64 `json:"net_minor"`
}

// readGateway reads the gateway's account of every order the audit knows.
func readGateway(ctx context.Context, base string, orderIDs []string) (map[string]GatewayAccount, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway URL %q: want http(s)://host[:port]", base)
	}
	out := make(map[string]GatewayAccount, len(orderIDs))
	for _, id := range orderIDs {
		if _, done := out[id]; done {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.JoinPath("v1", "accounts", id).String(), nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("gateway ledger of order %s: %w", id, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("gateway ledger of order %s: %w", id, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("gateway ledger of order %s: %s: %s", id, resp.Status, strings.TrimSpace(string(body)))
		}
		var a GatewayAccount
		if err := json.Unmarshal(body, &a); err != nil {
			return nil, fmt.Errorf("gateway ledger of order %s: %w", id, err)
		}
		out[id] = a
	}
	return out, nil
}

// gatewayLedger compares, per order, the money the gateway holds with the
// money the payment API says it captured and kept.
func (a *auditor) gatewayLedger(s *snapshot) {
	if s.gateway == nil {
		return
	}
	held := map[string]int64{}
	for _, p := range s.payments {
		if !isCaptured(p) {
			continue
		}
		kept := p.GetAmount().GetAmountMinor()
		for _, r := range p.GetRefunds() {
			kept -= r.GetAmount().GetAmountMinor()
		}
		held[p.GetOrderId()] += kept
	}
	ids := make([]string, 0, len(s.orders)+len(s.payments))
	for _, o := range s.orders {
		ids = append(ids, o.GetOrderId())
	}
	for _, p := range s.payments {
		ids = append(ids, p.GetOrderId())
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		acct, ok := s.gateway[id]
		if !ok {
			continue
		}
		a.GatewayAccounts++
		if acct.NetMinor != held[id] {
			a.violate("Gateway ledger of order %s holds %d minor units (%s), but payment's API keeps %d captured (%s).",
				id, acct.NetMinor, describeAccount(acct), held[id], describePayments(paymentsOf(s.payments, id)))
		}
	}
}

func describeAccount(a GatewayAccount) string {
	if a.Charge == nil {
		return "no charge"
	}
	var refunded int64
	for _, r := range a.Refunds {
		refunded += r.AmountMinor
	}
	return fmt.Sprintf("charge %s of %d %s, %d refund(s) of %d", a.Charge.Status, a.Charge.AmountMinor, a.Charge.Currency, len(a.Refunds), refunded)
}

func paymentsOf(ps []*paymentv1.Payment, orderID string) []*paymentv1.Payment {
	var out []*paymentv1.Payment
	for _, p := range ps {
		if p.GetOrderId() == orderID {
			out = append(out, p)
		}
	}
	return out
}
