package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.work above the test's directory")
		}
		dir = parent
	}
}

// readLayout reads every image of an OCI layout back by its ref.name annotation.
func readLayout(t *testing.T, dir string) map[string]v1.Image {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]v1.Image{}
	for _, d := range im.Manifests {
		ref := d.Annotations[RefNameAnnotation]
		if ref == "" {
			t.Fatalf("manifest %s has no %s", d.Digest, RefNameAnnotation)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		images[ref] = img
	}
	return images
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestServicesMatchTheDocumentedPorts keeps the Services table on the ports services/README.md
// documents, so the images expose what the docs (and the manifests written from them) say.
func TestServicesMatchTheDocumentedPorts(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "services", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(b)), " ")
	m := regexp.MustCompile(`Default gRPC ports for a local run: ([^;]+); ops \([^)]*\) (\d+)–(\d+)\.`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("services/README.md: the sentence \"Default gRPC ports for a local run: …; ops (…) A–B.\" is gone; update this test with the docs")
	}
	pairs := regexp.MustCompile(`(\w+) (\d+)`).FindAllStringSubmatch(m[1], -1)
	first, _ := strconv.Atoi(m[2])
	last, _ := strconv.Atoi(m[3])
	if len(pairs) != len(Services) || last-first+1 != len(Services) {
		t.Fatalf("README lists %d gRPC ports and ops %d–%d; the table has %d services", len(pairs), first, last, len(Services))
	}
	for i, p := range pairs {
		s, err := Lookup(p[1])
		if err != nil {
			t.Fatalf("README: %v", err)
		}
		grpc, _ := strconv.Atoi(p[2])
		if s.GRPCPort != grpc || s.OpsPort != first+i {
			t.Errorf("%s: table gRPC %d ops %d; README gRPC %d ops %d", s.Name, s.GRPCPort, s.OpsPort, grpc, first+i)
		}
	}
}

func TestOptionsRefuseBadInput(t *testing.T) {
	ok := Options{RepoRoot: "/r", Tag: "v1.2.3", Revision: "abc", BinDir: "/b"}
	cases := map[string]func(o *Options){
		"latest":       func(o *Options) { o.Tag = "latest" },
		"empty tag":    func(o *Options) { o.Tag = "" },
		"tag grammar":  func(o *Options) { o.Tag = "v1/2" },
		"no revision":  func(o *Options) { o.Revision = "" },
		"no repo root": func(o *Options) { o.RepoRoot = "" },
	}
	if err := ok.check(); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	for name, spoil := range cases {
		o := ok
		spoil(&o)
		if err := o.check(); err == nil {
			t.Errorf("%s: accepted %+v", name, o)
		}
	}
	if _, err := Lookup("billing"); err == nil || !strings.Contains(err.Error(), "order") {
		t.Errorf("Lookup(billing) = %v, want an error listing the services", err)
	}
}

// TestImages builds the six images (five services, the console) as `make images` does, reads them back from the OCI layout
// and checks each; then shows each check catches a planted mistake, that a rebuild gives the
// same digests, and that deploy/images/Dockerfile describes the same images.
func TestImages(t *testing.T) {
	root := repoRoot(t)
	tmp := t.TempDir()
	const tag, revision = "v0.0.0-test", "0123456789abcdef0123456789abcdef01234567"
	created := time.Unix(1_700_000_000, 0).UTC()
	o := Options{RepoRoot: root, Tag: tag, Revision: revision, Created: created, BinDir: filepath.Join(tmp, "bin")}
	// Generous: five static links on a shared 2-core machine (the Go build cache is reused).
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	if err := BuildBinaries(ctx, o, Images); err != nil {
		t.Fatal(err)
	}
	t.Logf("go build of 5 services, the console and healthcheck: %v", time.Since(start).Round(time.Millisecond))
	dir := filepath.Join(tmp, "oci")
	digests, err := WriteLayout(dir, o, Images)
	if err != nil {
		t.Fatal(err)
	}
	images := readLayout(t, dir)
	if len(images) != len(Images) {
		t.Fatalf("layout holds %d images, want %d", len(images), len(Images))
	}
	configs := map[string]v1.Config{}
	for _, s := range Images {
		img, ok := images[s.Ref(tag)]
		if !ok {
			t.Fatalf("layout has no %s", s.Ref(tag))
		}
		if got := digest(t, img); got != digests[s.Name] {
			t.Errorf("%s: digest read back %s, written %s", s.Name, got, digests[s.Name])
		}
		for _, err := range checkImage(img, want{s, tag, revision, created}) {
			t.Errorf("%s: %v", s.Name, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		configs[s.Name] = cf.Config
	}

	t.Run("binaries in the image run", func(t *testing.T) {
		testBinariesRun(t, ctx, images, tag, tmp)
	})

	t.Run("checks catch planted mistakes", func(t *testing.T) {
		testCheckImageCatchesMistakes(t, images[Services[0].Ref(tag)], want{Services[0], tag, revision, created})
	})

	t.Run("same digest on a rebuild", func(t *testing.T) {
		// The same binaries assembled again: the layer, config and manifest are byte-identical.
		again, err := WriteLayout(filepath.Join(tmp, "oci-again"), o, Images)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range Images {
			if again[s.Name] != digests[s.Name] {
				t.Errorf("%s: second assembly %s, first %s", s.Name, again[s.Name], digests[s.Name])
			}
		}
		// From scratch, go build included, for one service: the binary is reproducible too.
		o2 := o
		o2.BinDir = filepath.Join(tmp, "bin2")
		svc := Services[1]
		if err := BuildBinaries(ctx, o2, []Service{svc}); err != nil {
			t.Fatal(err)
		}
		fresh, err := WriteLayout(filepath.Join(tmp, "oci-fresh"), o2, []Service{svc})
		if err != nil {
			t.Fatal(err)
		}
		if fresh[svc.Name] != digests[svc.Name] {
			t.Errorf("%s rebuilt from source: %s, first build %s", svc.Name, fresh[svc.Name], digests[svc.Name])
		}
		// And a different date gives a different digest, so the comparison above can fail.
		o3 := o
		o3.Created = created.Add(time.Second)
		other, err := WriteLayout(filepath.Join(tmp, "oci-other-date"), o3, []Service{svc})
		if err != nil {
			t.Fatal(err)
		}
		if other[svc.Name] == digests[svc.Name] {
			t.Errorf("%s: another SOURCE_DATE_EPOCH gave the same digest %s", svc.Name, other[svc.Name])
		}
	})

	t.Run("layout is only replaced when it is one", func(t *testing.T) {
		notLayout := filepath.Join(tmp, "precious")
		if err := os.MkdirAll(notLayout, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := WriteLayout(notLayout, o, Services[:1]); err == nil || !strings.Contains(err.Error(), "not an OCI layout") {
			t.Fatalf("WriteLayout over a plain directory: %v, want a refusal", err)
		}
	})

	t.Run("Dockerfile agrees with the images", func(t *testing.T) {
		text, err := readDockerfile(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range checkDockerfile(text, configs, tag, revision) {
			t.Error(err)
		}
		testDockerfileCheckCatchesMistakes(t, text, configs, tag, revision)
	})
}

// layerWith is a layer holding the given tar entries (name → mode; a name under ".wh." deletes).
func layerWith(t *testing.T, files map[string]int64) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, mode := range files {
		data := []byte("#!/bin/sh\n")
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(1_700_000_000, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func testCheckImageCatchesMistakes(t *testing.T, good v1.Image, w want) {
	cf, err := good.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	withConfig := func(change func(c *v1.Config)) func() (v1.Image, error) {
		return func() (v1.Image, error) {
			c := *cf.Config.DeepCopy()
			change(&c)
			return mutate.Config(good, c)
		}
	}
	withLayer := func(files map[string]int64) func() (v1.Image, error) {
		return func() (v1.Image, error) { return mutate.AppendLayers(good, layerWith(t, files)) }
	}
	cases := []struct {
		name, wantErr string
		image         func() (v1.Image, error)
	}{
		{"root user", "non-root", withConfig(func(c *v1.Config) { c.User = "0:0" })},
		{"named user", "numeric", withConfig(func(c *v1.Config) { c.User = "nonroot" })},
		{"wrong entrypoint", "entrypoint", withConfig(func(c *v1.Config) { c.Entrypoint = []string{"/usr/local/bin/payment"} })},
		{"wrong ops port", "exposed ports", withConfig(func(c *v1.Config) {
			c.ExposedPorts = map[string]struct{}{fmt.Sprintf("%d/tcp", w.svc.GRPCPort): {}, "8080/tcp": {}}
		})},
		{"extra port", "exposed ports", withConfig(func(c *v1.Config) { c.ExposedPorts["9090/tcp"] = struct{}{} })},
		{"listen address off the exposed port", "_GRPC_ADDR", withConfig(func(c *v1.Config) { c.Env = []string{"ORDER_GRPC_ADDR=:9090", "ORDER_OPS_ADDR=:8081"} })},
		{"secret in env", "no credentials", withConfig(func(c *v1.Config) { c.Env = append(c.Env, "ORDER_MYSQL_DSN=root:pw@tcp(db)/x") })},
		{"missing label", "licenses", withConfig(func(c *v1.Config) { delete(c.Labels, "org.opencontainers.image.licenses") })},
		{"wrong version label", "version", withConfig(func(c *v1.Config) { c.Labels["org.opencontainers.image.version"] = "latest" })},
		{"no healthcheck", "healthcheck", withConfig(func(c *v1.Config) { c.Healthcheck = nil })},
		{"shell", "no shell", withLayer(map[string]int64{"bin/sh": 0o755})},
		{"binary not executable", "not an executable", withLayer(map[string]int64{"usr/local/bin/order": 0o644})},
		{"binary not static ELF", "not an ELF", withLayer(map[string]int64{"usr/local/bin/order": 0o755})},
		{"binary missing", "/usr/local/bin/order missing", withLayer(map[string]int64{"usr/local/bin/.wh.order": 0o644})},
		{"CA bundle missing", "ca-certificates.crt missing", withLayer(map[string]int64{"etc/ssl/certs/.wh.ca-certificates.crt": 0o644})},
		{"no passwd entry", "/etc/passwd", withLayer(map[string]int64{"etc/passwd": 0o644})},
		{"wrong timestamp", "mtime", func() (v1.Image, error) {
			return mutate.AppendLayers(good, layerWithTime(t, "etc/motd", time.Unix(1_800_000_000, 0)))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := c.image()
			if err != nil {
				t.Fatal(err)
			}
			errs := checkImage(img, w)
			if !containsErr(errs, c.wantErr) {
				t.Fatalf("planted %q: errors %v, want one containing %q", c.name, errs, c.wantErr)
			}
		})
	}
}

func layerWithTime(t *testing.T, name string, mtime time.Time) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: mtime}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func containsErr(errs []error, part string) bool {
	for _, e := range errs {
		if strings.Contains(e.Error(), part) {
			return true
		}
	}
	return false
}

func testDockerfileCheckCatchesMistakes(t *testing.T, text string, configs map[string]v1.Config, tag, revision string) {
	cases := []struct{ name, old, new, wantErr string }{
		{"wrong exposed port", "EXPOSE 50051 8081", "EXPOSE 50051 8080", "order: exposed ports"},
		{"root user", "USER 65532:65532", "USER 0:0", "user"},
		{"shell-form entrypoint", `ENTRYPOINT ["/usr/local/bin/payment"]`, "ENTRYPOINT /usr/local/bin/payment", "exec form"},
		{"wrong entrypoint", `ENTRYPOINT ["/usr/local/bin/shipping"]`, `ENTRYPOINT ["/usr/local/bin/order"]`, "shipping: entrypoint"},
		{"missing label", `org.opencontainers.image.licenses="NOASSERTION" \`, `\`, "labels"},
		{"wrong listen address", "ORDER_OPS_ADDR=:8081", "ORDER_OPS_ADDR=:8080", "order: env"},
		{"healthcheck of another service", `healthcheck", "shipping"]`, `healthcheck", "order"]`, "shipping: healthcheck"},
		{"shell-form healthcheck", `CMD ["/usr/local/bin/healthcheck", "inventory"]`, `CMD /usr/local/bin/healthcheck inventory`, "exec form"},
		{"dynamic build", "CGO_ENABLED=0 ", "", "CGO_ENABLED=0"},
		{"fixed final stage", "FROM service-${SERVICE}", "FROM service-order", "inventory: entrypoint"},
		{"base with a shell", "FROM gcr.io/distroless/static-debian12:nonroot AS runtime", "FROM debian:bookworm-slim AS runtime", "no shell"},
		{"root base variant", "static-debian12:nonroot AS runtime", "static-debian12:latest AS runtime", "nonroot"},
		{"RUN in a runtime stage", "WORKDIR /home/nonroot", "WORKDIR /home/nonroot\nRUN mkdir /data", "no shell"},
		{"SERVICE default", "\nARG SERVICE\n\nFROM golang", "\nARG SERVICE=order\n\nFROM golang", "ARG SERVICE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(text, c.old) {
				t.Fatalf("the Dockerfile no longer contains %q; update the planted mistake", c.old)
			}
			errs := checkDockerfile(strings.Replace(text, c.old, c.new, 1), configs, tag, revision)
			if !containsErr(errs, c.wantErr) {
				t.Fatalf("planted %q: errors %v, want one containing %q", c.name, errs, c.wantErr)
			}
		})
	}
}

// testBinariesRun runs the files taken out of the images with the images' environment only:
// each service starts, reads its config and stops naming its missing broker setting (so the
// entrypoint is a working static binary for this config prefix), and the healthcheck probe
// tells a ready ops port from an unready one.
func testBinariesRun(t *testing.T, ctx context.Context, images map[string]v1.Image, tag, tmp string) {
	if runtime.GOOS != "linux" {
		t.Skip("the images hold linux binaries")
	}
	extract := func(img v1.Image, path, to string) {
		t.Helper()
		files, err := flatten(img)
		if err != nil {
			t.Fatal(err)
		}
		e, ok := files[strings.TrimPrefix(path, "/")]
		if !ok {
			t.Fatalf("%s missing", path)
		}
		if err := os.WriteFile(to, e.data, os.FileMode(e.hdr.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range Images {
		img := images[s.Ref(tag)]
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(tmp, "run-"+s.Name)
		extract(img, cf.Config.Entrypoint[0], bin)
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = cf.Config.Env
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		// Each binary refuses to start without its first required variable, naming it.
		required := s.EnvPrefix() + "_KAFKA_BROKERS"
		if s.Name == Console.Name {
			required = "CONSOLE_ORDER_URL"
		}
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), required+" is required") {
			t.Errorf("%s without configuration: %v, output %q; want exit 1 naming %s", s.Name, err, out, required)
		}
	}

	probe := filepath.Join(tmp, "run-healthcheck")
	extract(images[Services[0].Ref(tag)], Healthcheck, probe)
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	runProbe := func() error {
		cmd := exec.CommandContext(ctx, probe, "order")
		cmd.Env = []string{"ORDER_OPS_ADDR=:" + port}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := runProbe(); err != nil {
		t.Errorf("healthcheck against a ready ops port: %v", err)
	}
	status.Store(http.StatusServiceUnavailable)
	if err := runProbe(); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("healthcheck against an unready ops port: %v, want exit status 1", err)
	}
}
