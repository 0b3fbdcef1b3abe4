package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sagasuite/sagasuite/web"
)

// In same-origin mode /config.json names the origin the page came from, with
// a path per service, for every service, and the CSP admits that origin alone.
func TestSameOriginHandler(t *testing.T) {
	h, err := web.SameOriginHandler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	api := srv.URL + web.ServicePathPrefix // http://127.0.0.1:port/api/
	checkConsole(t, srv.URL+"/", web.Services{api + "order", api + "inventory", api + "payment", api + "shipping", api + "notification"})

	configFor := func(host, proto string) (int, web.Services, http.Header) {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/config.json", nil)
		req.Host = host
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var cfg struct {
			Services web.Services `json:"services"`
		}
		body, _ := io.ReadAll(rec.Body)
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(body, &cfg); err != nil {
				t.Fatalf("config.json for %s: %v\n%s", host, err, body)
			}
		}
		return rec.Code, cfg.Services, rec.Header()
	}
	code, got, hdr := configFor("shop.example.com", "https")
	want := "https://shop.example.com/api/"
	if code != http.StatusOK || got != (web.Services{want + "order", want + "inventory", want + "payment", want + "shipping", want + "notification"}) {
		t.Errorf("behind a TLS proxy: status %d, services %+v; want each under %s", code, got, want)
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self';") {
		t.Errorf("CSP %q: want connect-src 'self' only", csp)
	}
	if code, got, _ := configFor("console.sagasuite:8090", ""); code != http.StatusOK || got.Payment != "http://console.sagasuite:8090/api/payment" {
		t.Errorf("plain HTTP: status %d, services %+v", code, got)
	}
	for _, bad := range []string{"", "evil.example/path", "a b"} {
		if code, _, _ := configFor(bad, ""); code != http.StatusBadRequest {
			t.Errorf("host %q: status %d, want 400", bad, code)
		}
	}
}
