package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadyURL(t *testing.T) {
	cases := []struct {
		name, service string
		env           map[string]string
		want, err     string
	}{
		{"wildcard", "order", map[string]string{"ORDER_OPS_ADDR": ":8081"}, "http://127.0.0.1:8081/readyz", ""},
		{"ipv4 any", "payment", map[string]string{"PAYMENT_OPS_ADDR": "0.0.0.0:8083"}, "http://127.0.0.1:8083/readyz", ""},
		{"host kept", "order", map[string]string{"ORDER_OPS_ADDR": "10.0.0.7:9000"}, "http://10.0.0.7:9000/readyz", ""},
		{"tls", "shipping", map[string]string{"SHIPPING_OPS_ADDR": ":8084", "SHIPPING_TLS_CERT_FILE": "/tls/tls.crt"}, "https://127.0.0.1:8084/readyz", ""},
		{"other service's variable ignored", "order", map[string]string{"PAYMENT_OPS_ADDR": ":8083"}, "", "ORDER_OPS_ADDR is not set"},
		{"console's one listener", "console", map[string]string{"CONSOLE_ADDR": ":8090"}, "http://127.0.0.1:8090/readyz", ""},
		{"no port", "order", map[string]string{"ORDER_OPS_ADDR": "localhost"}, "", "missing port"},
		{"bad name", "a=b", nil, "", "bad service name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := readyURL(c.service, func(k string) string { return c.env[k] })
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("readyURL = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestProbe(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || !ready.Load() {
			http.Error(w, "not ready: kafka", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := probe(ctx, srv.URL+"/readyz"); err != nil {
		t.Fatalf("ready server: %v", err)
	}
	ready.Store(false)
	if err := probe(ctx, srv.URL+"/readyz"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("unready server: err = %v, want 503", err)
	}
	srv.Close()
	if err := probe(ctx, srv.URL+"/readyz"); err == nil {
		t.Fatal("closed server: no error")
	}
}
