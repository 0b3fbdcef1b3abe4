package simgateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// The HTTP API (JSON bodies):
//
//	POST /v1/charges          {key, amount_minor, currency, token} → 200 ChargeRecord (succeeded or declined)
//	POST /v1/refunds          {key, charge_id, amount_minor, currency} → 200 RefundRecord
//	GET  /v1/charges/{key}    → 200 ChargeRecord, 404 none
//	GET  /v1/refunds/{key}    → 200 RefundRecord, 404 none
//	GET  /v1/accounts/{key}   → 200 Account: the charge under key, its refunds, the net (the audit reads this)
//	GET  /healthz             → 200
//
// 503 means nothing happened (retry); 422 a request refused whatever the
// retry; a timeout fault closes the connection without an answer.

type chargeRequest struct {
	Key         string `json:"key"`
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
	Token       string `json:"token"`
}

type refundRequest struct {
	Key         string `json:"key"`
	ChargeID    string `json:"charge_id"`
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

// maxBody bounds a request body.
const maxBody = 64 << 10

// Handler serves the gateway over HTTP.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	inner := g.serverSide() // faults are drawn once per request, here
	mux.HandleFunc("POST /v1/charges", func(w http.ResponseWriter, r *http.Request) {
		var req chargeRequest
		if !decode(w, r, &req) {
			return
		}
		var rec ChargeRecord
		err := g.withFaults(r.Context(), func() error {
			_, err := inner.Charge(context.WithoutCancel(r.Context()), req.Key, payment.Money{AmountMinor: req.AmountMinor, Currency: req.Currency}, req.Token)
			var d *payment.Decline
			if err != nil && !errors.As(err, &d) {
				return err
			}
			rec, err = g.ledger.Charge(req.Key)
			return err
		})
		reply(w, rec, err)
	})
	mux.HandleFunc("POST /v1/refunds", func(w http.ResponseWriter, r *http.Request) {
		var req refundRequest
		if !decode(w, r, &req) {
			return
		}
		var rec RefundRecord
		err := g.withFaults(r.Context(), func() error {
			if _, err := inner.Refund(context.WithoutCancel(r.Context()), req.Key, req.ChargeID,
				payment.Money{AmountMinor: req.AmountMinor, Currency: req.Currency}); err != nil {
				return err
			}
			var err error
			rec, err = g.ledger.Refund(req.Key)
			return err
		})
		reply(w, rec, err)
	})
	mux.HandleFunc("GET /v1/charges/{key}", func(w http.ResponseWriter, r *http.Request) {
		var rec ChargeRecord
		err := g.lookupFault(r.Context())
		if err == nil {
			rec, err = g.ledger.Charge(r.PathValue("key"))
		}
		reply(w, rec, err)
	})
	mux.HandleFunc("GET /v1/refunds/{key}", func(w http.ResponseWriter, r *http.Request) {
		var rec RefundRecord
		err := g.lookupFault(r.Context())
		if err == nil {
			rec, err = g.ledger.Refund(r.PathValue("key"))
		}
		reply(w, rec, err)
	})
	mux.HandleFunc("GET /v1/accounts/{key}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, g.ledger.Account(r.PathValue("key")), nil)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return mux
}

// The in-process calls inside the HTTP handlers must not draw faults again.
func (g *Gateway) serverSide() *Gateway {
	return &Gateway{failureRate: g.failureRate, ledger: g.ledger}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, fmt.Sprintf(`{"error":%q}`, "bad request body: "+err.Error()), http.StatusBadRequest)
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, ErrUnknownOutcome):
		// The caller never hears back: close the connection unanswered.
		panic(http.ErrAbortHandler)
	case errors.Is(err, ErrUnavailable):
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case errors.Is(err, ErrRejected):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Client reaches a gateway served by Handler; it implements the payment
// app's Gateway.
type Client struct {
	base *url.URL
	http *http.Client
}

// NewClient returns a client of the gateway at baseURL whose calls give up
// after timeout (then the outcome of a charge or refund is unknown).
func NewClient(baseURL string, timeout time.Duration) (*Client, error) {
	u, err := ParseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("simgateway: timeout %v must be positive", timeout)
	}
	return &Client{base: u, http: &http.Client{Timeout: timeout}}, nil
}

// ParseURL checks a gateway base URL: http or https, with a host.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("simgateway: gateway URL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("simgateway: gateway URL %q must be http(s)://host[:port]", raw)
	}
	return u, nil
}

// Close releases idle connections.
func (c *Client) Close() error { c.http.CloseIdleConnections(); return nil }

// Charge asks the gateway to charge; see Gateway.Charge for the errors.
func (c *Client) Charge(ctx context.Context, key string, amount payment.Money, token string) (string, error) {
	var rec ChargeRecord
	if err := c.do(ctx, http.MethodPost, "/v1/charges", chargeRequest{Key: key, AmountMinor: amount.AmountMinor,
		Currency: amount.Currency, Token: token}, &rec); err != nil {
		return "", err
	}
	return rec.Result()
}

// Refund asks the gateway to refund; see Gateway.Refund for the errors.
func (c *Client) Refund(ctx context.Context, key, chargeID string, amount payment.Money) (string, error) {
	var rec RefundRecord
	if err := c.do(ctx, http.MethodPost, "/v1/refunds", refundRequest{Key: key, ChargeID: chargeID,
		AmountMinor: amount.AmountMinor, Currency: amount.Currency}, &rec); err != nil {
		return "", err
	}
	return rec.RefundID, nil
}

// LookupCharge returns the charge under key, or ErrNotFound.
func (c *Client) LookupCharge(ctx context.Context, key string) (ChargeRecord, error) {
	var rec ChargeRecord
	return rec, c.do(ctx, http.MethodGet, "/v1/charges/"+url.PathEscape(key), nil, &rec)
}

// LookupRefund returns the refund under key, or ErrNotFound.
func (c *Client) LookupRefund(ctx context.Context, key string) (RefundRecord, error) {
	var rec RefundRecord
	return rec, c.do(ctx, http.MethodGet, "/v1/refunds/"+url.PathEscape(key), nil, &rec)
}

// Account returns what the gateway holds for charge key.
func (c *Client) Account(ctx context.Context, key string) (Account, error) {
	var a Account
	return a, c.do(ctx, http.MethodGet, "/v1/accounts/"+url.PathEscape(key), nil, &a)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.JoinPath(path).String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return errors.Join(ErrUnknownOutcome, ctx.Err())
		}
		// No answer: a POST may or may not have been applied.
		return fmt.Errorf("%w: %s %s: %v", ErrUnknownOutcome, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("%w: %s %s: reading the answer: %v", ErrUnknownOutcome, method, path, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%w: %s %s: undecodable answer: %v", ErrUnknownOutcome, method, path, err)
		}
		return nil
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %s", ErrNotFound, path)
	case resp.StatusCode == http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s %s", ErrUnavailable, method, path)
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return fmt.Errorf("%w: %s %s: %d %s", ErrRejected, method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	// Any other 5xx: the server may have failed after applying.
	return fmt.Errorf("%w: %s %s: %d %s", ErrUnknownOutcome, method, path, resp.StatusCode, strings.TrimSpace(string(b)))
}
