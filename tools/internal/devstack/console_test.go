package devstack_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// checkConsole fetches the dev stack's web console: the page, its bundle and
// stylesheet with their content types, and /config.json naming the five
// services' browser URLs (the defaults, as the test sets none).
func checkConsole(t *testing.T, st *devstack.Stack, banner string) {
	t.Helper()
	if st.ConsoleURL == "" {
		t.Fatal("the stack serves no console (ConsoleURL empty)")
	}
	if !strings.Contains(banner, "Web console: "+st.ConsoleURL) {
		t.Errorf("banner does not print the console URL %s:\n%s", st.ConsoleURL, banner)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for path, want := range map[string]string{"": "text/html", "app.js": "text/javascript", "style.css": "text/css", "config.json": "application/json"} {
		res, err := client.Get(st.ConsoleURL + path)
		if err != nil {
			t.Fatalf("GET %s%s: %v", st.ConsoleURL, path, err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || len(body) == 0 {
			t.Fatalf("GET /%s: status %d, %d bytes, %v", path, res.StatusCode, len(body), err)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, want) {
			t.Errorf("GET /%s: Content-Type %q, want %s", path, ct, want)
		}
		if path != "config.json" {
			continue
		}
		var cfg struct {
			Services map[string]string `json:"services"`
		}
		if err := json.Unmarshal(body, &cfg); err != nil {
			t.Fatalf("config.json: %v\n%s", err, body)
		}
		for _, name := range suite.Services {
			// The browser listeners this stack opened (":0" here), so the page calls them.
			if got, want := cfg.Services[name], "http://"+st.Web.Of(name); got != want || st.Web.Of(name) == "" {
				t.Errorf("config.json services.%s = %q, want %q", name, got, want)
			}
		}
		if len(cfg.Services) != len(suite.Services) {
			t.Errorf("config.json names %d services, want %d: %s", len(cfg.Services), len(suite.Services), body)
		}
	}
}
