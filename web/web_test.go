package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/web"
)

var devServices = web.Services{
	Order: "http://127.0.0.1:8091", Inventory: "http://127.0.0.1:8092", Payment: "http://127.0.0.1:8093",
	Shipping: "http://127.0.0.1:8094", Notification: "http://127.0.0.1:8095",
}

// The console server answers the page, its bundle and stylesheet with the
// right content types, and /config.json with the five service URLs.
func TestServeConsole(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := web.Serve(ln, devServices)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	checkConsole(t, srv.URL, devServices)

	res, err := http.Get(srv.URL + "no-such-file.js")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /no-such-file.js: status %d, want 404", res.StatusCode)
	}
}

func TestHandlerRefusesBadServiceURLs(t *testing.T) {
	bad := devServices
	bad.Payment = "127.0.0.1:8093" // no scheme
	bad.Shipping = ""
	_, err := web.Handler(bad)
	if err == nil {
		t.Fatal("Handler accepted URLs without a scheme")
	}
	for _, want := range []string{"payment", "shipping"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// checkConsole fetches the console at base and checks what the page needs.
func checkConsole(t *testing.T, base string, want web.Services) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) (string, []byte, http.Header) {
		res, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d, %v", path, res.StatusCode, err)
		}
		return res.Header.Get("Content-Type"), body, res.Header
	}
	ct, body, hdr := get("")
	if !strings.HasPrefix(ct, "text/html") || !bytes.Contains(body, []byte(`<script type="module" src="app.js">`)) {
		t.Errorf("GET /: %s, want the console's index.html:\n%s", ct, body)
	}
	// A service on the console's own origin is admitted by 'self'.
	sameOrigin := strings.HasPrefix(want.Order, strings.TrimSuffix(base, "/")+"/") && strings.Contains(hdr.Get("Content-Security-Policy"), "connect-src 'self'")
	if csp := hdr.Get("Content-Security-Policy"); (!sameOrigin && !strings.Contains(csp, want.Order)) || !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy %q does not allow the order service %s", csp, want.Order)
	}
	if ct, body, _ := get("app.js"); !strings.HasPrefix(ct, "text/javascript") || !bytes.Contains(body, []byte("config.json")) {
		t.Errorf("GET /app.js: %s, %d bytes; want the bundle (text/javascript) that loads config.json", ct, len(body))
	}
	if ct, _, _ := get("style.css"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("GET /style.css: %s, want text/css", ct)
	}
	ct, body, _ = get("config.json")
	var cfg struct {
		Services web.Services `json:"services"`
	}
	if err := json.Unmarshal(body, &cfg); err != nil || !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET /config.json: %s, %v:\n%s", ct, err, body)
	}
	if cfg.Services != want {
		t.Errorf("config.json services = %+v, want %+v", cfg.Services, want)
	}
}

// nodeModules is web/node_modules, installed by make web-deps (npm ci).
func nodeModules(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("node_modules")
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"tsc", "esbuild", "protoc-gen-es"} {
		if _, err := os.Stat(filepath.Join(dir, ".bin", tool)); err != nil {
			t.Fatalf("%s is not installed (%v): run make web-deps (npm ci in web/)", tool, err)
		}
	}
	return dir
}

func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a bound for a hang only
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
}

// tsc --noEmit over the sources, generated code included.
func TestTypecheck(t *testing.T) {
	nm := nodeModules(t)
	run(t, ".", filepath.Join(nm, ".bin", "tsc"), "--noEmit", "-p", ".")
}

// The console's pure parts (money, tokens, error mapping, timeline kinds):
// test/units.test.ts bundled by the pinned esbuild, run by node's test runner.
func TestUnits(t *testing.T) {
	nm := nodeModules(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH: %v", err)
	}
	bundle := filepath.Join(t.TempDir(), "units.test.mjs")
	run(t, ".", filepath.Join(nm, ".bin", "esbuild"), "test/units.test.ts", "--bundle", "--platform=node", "--format=esm", "--log-level=warning", "--outfile="+bundle)
	run(t, ".", node, "--test", bundle)
}

// The committed dist/ is what build.mjs makes from the committed sources.
func TestBundleIsFresh(t *testing.T) {
	nodeModules(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH: %v", err)
	}
	out := t.TempDir()
	run(t, ".", node, "build.mjs", "--outdir", out)
	compareTrees(t, out, "dist", "make web-bundle")
}

// The committed src/gen/ is what buf and the pinned protoc-gen-es make from proto/.
func TestGeneratedClientsAreFresh(t *testing.T) {
	nodeModules(t)
	buf := findBuf(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".build", "proto-include", "buf", "validate", "validate.proto")); err != nil {
		t.Fatalf("protovalidate's schema is missing (%v): run make proto-include", err)
	}
	out := t.TempDir()
	// --output prefixes the template's out dir (web/src/gen).
	run(t, root, buf, "generate", "--template", "web/buf.gen.yaml", "--output", out)
	compareTrees(t, filepath.Join(out, "web", "src", "gen"), filepath.Join("src", "gen"), "make web-gen")
}

// findBuf locates the pinned buf as make proto-tools installs it.
func findBuf(t *testing.T) string {
	t.Helper()
	var candidates []string
	if home := os.Getenv("SAGASUITE_HOME"); home != "" {
		candidates = append(candidates, filepath.Join(home, "bin", "buf"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".cache", "sagasuite", "bin", "buf"))
	}
	for _, c := range candidates {
		if info, err := os.Stat(c); err == nil && !info.IsDir() {
			return c
		}
	}
	if p, err := exec.LookPath("buf"); err == nil {
		return p
	}
	t.Fatalf("buf not found (looked at %v and PATH): run make proto-tools", candidates)
	return ""
}

// compareTrees fails naming every file that differs between fresh and committed.
func compareTrees(t *testing.T, fresh, committed, fix string) {
	t.Helper()
	a, b := readTree(t, fresh), readTree(t, committed)
	if len(a) == 0 {
		t.Fatalf("nothing was generated in %s", fresh)
	}
	var stale []string
	for rel, want := range a {
		got, ok := b[rel]
		switch {
		case !ok:
			stale = append(stale, "missing: "+rel)
		case !bytes.Equal(got, want):
			stale = append(stale, "differs: "+rel)
		}
	}
	for rel := range b {
		if _, ok := a[rel]; !ok {
			stale = append(stale, "extra: "+rel)
		}
	}
	if len(stale) > 0 {
		slices.Sort(stale)
		t.Errorf("web/%s is stale; run %s and commit the result:\n  %s", committed, fix, strings.Join(stale, "\n  "))
	}
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == dir {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return files
}
