package main

import (
	"strings"
	"testing"
)

// `sagactl dev` moves every browser listener and the CORS origins by flag,
// and refuses an origin that is not one, before starting anything.
func TestDevFlagsForTheBrowserListeners(t *testing.T) {
	_, _, usage := sagactl(t, "dev", "-h")
	for _, flag := range []string{"-order-web", "-notification-web", "-console-listen", "-web-origins"} {
		if !strings.Contains(usage, flag) {
			t.Errorf("sagactl dev -h lacks %s:\n%s", flag, usage)
		}
	}
	code, out, stderr := sagactl(t, "dev", "--web-origins", "http://127.0.0.1:9090,127.0.0.1:9091")
	if code != exitError || !strings.Contains(stderr, `--web-origins "127.0.0.1:9091"`) || strings.Contains(out, "starting") {
		t.Errorf("a bad --web-origins: exit %d, stdout %q, stderr %q; want exit %d naming it before starting", code, out, stderr, exitError)
	}
}
