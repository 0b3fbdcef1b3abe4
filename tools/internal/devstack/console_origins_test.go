package devstack

import (
	"slices"
	"testing"
)

// A console moved with --console-listen is allowed by CORS at its new
// origin; the default one (or a port not chosen yet) keeps the defaults.
func TestConsoleOriginsFollowTheConsole(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want []string
	}{
		{DefaultConsoleAddr, DefaultWebOrigins},
		{"", DefaultWebOrigins},
		{"127.0.0.1:0", DefaultWebOrigins},
		{"127.0.0.1:9090", []string{"http://127.0.0.1:9090", "http://localhost:9090"}},
		{":9090", []string{"http://127.0.0.1:9090", "http://localhost:9090"}},
		{"0.0.0.0:9090", []string{"http://127.0.0.1:9090", "http://localhost:9090"}},
		{"192.0.2.7:9090", []string{"http://192.0.2.7:9090"}},
		{"console.example:80", []string{"http://console.example:80"}},
	} {
		if got := consoleOrigins(tc.addr); !slices.Equal(got, tc.want) {
			t.Errorf("consoleOrigins(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
