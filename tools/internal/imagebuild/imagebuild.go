// Package imagebuild builds the services' and the console's OCI images without a container engine: an empty
// base, one layer (CA bundle, /etc/passwd and /etc/group with the non-root user, the static
// service or console binary and the healthcheck probe), and a config naming user, entrypoint, ports and
// labels. Every timestamp is fixed, so the same sources and toolchain give the same digest.
//
// deploy/images/Dockerfile builds the same images with a Docker engine; its test keeps the two
// in agreement (ports, user, entrypoint, labels, health check).
package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Service is one image: its name (binary, repository) and the ports services/README.md (the
// console: web/README.md) documents for it.
type Service struct {
	Name        string
	GRPCPort    int // zero for the console
	OpsPort     int // zero for the console
	Description string
	// HTTPPort is the console's one listener (CONSOLE_ADDR): page, APIs forwarded, /healthz.
	HTTPPort int
	// Package is the main package; empty: ./services/<Name>/cmd/<Name>.
	Package string
}

// MainPackage is the Go package the image's binary is built from.
func (s Service) MainPackage() string {
	if s.Package != "" {
		return s.Package
	}
	return "./services/" + s.Name + "/cmd/" + s.Name
}

// Ports are the image's exposed ports.
func (s Service) Ports() []int {
	var ports []int
	for _, p := range []int{s.GRPCPort, s.OpsPort, s.HTTPPort} {
		if p != 0 {
			ports = append(ports, p)
		}
	}
	return ports
}

// EnvPrefix is the prefix of the service's variables (ORDER for order).
func (s Service) EnvPrefix() string { return strings.ToUpper(s.Name) }

// Services are the five services with their documented ports (services/README.md: "Default
// gRPC ports … order 50051 … ops 8081–8085"). The k8s manifests' containerPorts and listen
// addresses use the same numbers (tools/internal/k8scheck's TestPortsMatchTheImages).
var Services = []Service{
	{Name: "order", GRPCPort: 50051, OpsPort: 8081, Description: "sagasuite order service: orders and their saga outcome (MySQL)"},
	{Name: "inventory", GRPCPort: 50052, OpsPort: 8082, Description: "sagasuite inventory service: stock and reservations (MySQL)"},
	{Name: "payment", GRPCPort: 50053, OpsPort: 8083, Description: "sagasuite payment service: charges and refunds (MySQL)"},
	{Name: "shipping", GRPCPort: 50054, OpsPort: 8084, Description: "sagasuite shipping service: shipments (MongoDB wire protocol)"},
	{Name: "notification", GRPCPort: 50055, OpsPort: 8085, Description: "sagasuite notification service: notifications and saga log (Cassandra)"},
}

// Console is the browser console's image (tools/cmd/console): the page and the five services'
// browser APIs on one port, the dev stack's 8090 (tools/internal/console.DefaultPort).
var Console = Service{Name: "console", HTTPPort: 8090, Package: "./tools/cmd/console",
	Description: "sagasuite browser console: the web page and the services' browser APIs on one origin"}

// Images are every image `make images` builds: the five services and the console.
var Images = append(append([]Service(nil), Services...), Console)

// Fixed parts of every image, shared with the Dockerfile's test.
const (
	Repository  = "sagasuite" // images are named <Repository>/<service>:<tag>
	SourceURL   = "https://github.com/sagasuite/sagasuite"
	Licenses    = "NOASSERTION" // the repository has no licence file yet (SPDX: no assertion made)
	UID         = 65532         // distroless's "nonroot", so both image kinds run as the same user
	User        = "65532:65532"
	HomeDir     = "/home/nonroot"
	BinDir      = "/usr/local/bin"
	Healthcheck = BinDir + "/healthcheck"
	CABundle    = "/etc/ssl/certs/ca-certificates.crt"
	// RefNameAnnotation names an image inside an OCI layout (skopeo's oci:DIR:NAME reads it).
	RefNameAnnotation = "org.opencontainers.image.ref.name"
)

// Entrypoint is the service binary's path in the image.
func (s Service) Entrypoint() string { return BinDir + "/" + s.Name }

// Ref is the image's name and tag in the layout (sagasuite/order:v1.2.3).
func (s Service) Ref(tag string) string { return Repository + "/" + s.Name + ":" + tag }

// Env is the image's environment: the documented listen addresses, no secrets.
func (s Service) Env() []string {
	p := s.EnvPrefix()
	env := []string{"PATH=" + BinDir}
	if s.GRPCPort != 0 {
		env = append(env, fmt.Sprintf("%s_GRPC_ADDR=:%d", p, s.GRPCPort))
	}
	if s.OpsPort != 0 {
		env = append(env, fmt.Sprintf("%s_OPS_ADDR=:%d", p, s.OpsPort))
	}
	if s.HTTPPort != 0 {
		env = append(env, fmt.Sprintf("%s_ADDR=:%d", p, s.HTTPPort))
	}
	return env
}

// HealthcheckTest is the Docker health check: the probe asks the ops port's /readyz (the
// console's: CONSOLE_ADDR's).
func (s Service) HealthcheckTest() []string {
	return []string{"CMD", Healthcheck, s.Name}
}

// Health check timing, the same in the Dockerfile.
const (
	HealthInterval    = 10 * time.Second
	HealthTimeout     = 3 * time.Second
	HealthStartPeriod = 30 * time.Second
	HealthRetries     = 3
)

// Labels are the image's OCI annotations-as-labels.
func (s Service) Labels(version, revision string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":      SourceURL,
		"org.opencontainers.image.title":       Repository + "/" + s.Name,
		"org.opencontainers.image.description": s.Description,
		"org.opencontainers.image.licenses":    Licenses,
		"org.opencontainers.image.revision":    revision,
		"org.opencontainers.image.version":     version,
	}
}

// Lookup finds an image (a service or the console) by name.
func Lookup(name string) (Service, error) {
	for _, s := range Images {
		if s.Name == name {
			return s, nil
		}
	}
	names := make([]string, len(Images))
	for i, s := range Images {
		names[i] = s.Name
	}
	return Service{}, fmt.Errorf("unknown service %q (one of %s)", name, strings.Join(names, ", "))
}

// tagPattern is Docker's tag grammar; "latest" is refused on top, since a moving tag names
// no build.
var tagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// Options are what a build needs besides the service.
type Options struct {
	RepoRoot string    // checkout root (holds go.work)
	Tag      string    // image tag and version label
	Revision string    // commit id for the revision label
	Created  time.Time // every timestamp in the image (SOURCE_DATE_EPOCH; zero: the Unix epoch)
	CACerts  string    // CA bundle to copy (default: this machine's /etc/ssl/certs/ca-certificates.crt)
	GOARCH   string    // default: runtime.GOARCH
	BinDir   string    // where the static binaries are built
}

func (o *Options) check() error {
	if o.RepoRoot == "" {
		return errors.New("imagebuild: RepoRoot is empty")
	}
	if !tagPattern.MatchString(o.Tag) {
		return fmt.Errorf("imagebuild: tag %q is not a valid image tag", o.Tag)
	}
	if o.Tag == "latest" {
		return errors.New("imagebuild: refusing tag \"latest\": give a version (git describe) or a fixed dev tag")
	}
	if o.Revision == "" {
		return errors.New("imagebuild: Revision is empty")
	}
	if o.BinDir == "" {
		return errors.New("imagebuild: BinDir is empty")
	}
	if o.CACerts == "" {
		o.CACerts = CABundle
	}
	if o.GOARCH == "" {
		o.GOARCH = runtime.GOARCH
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0)
	}
	o.Created = o.Created.UTC()
	return nil
}

// BuildBinaries builds the static binaries of the given services and the healthcheck probe
// into o.BinDir (CGO off, -trimpath, no VCS stamp or build id that varies between checkouts).
func BuildBinaries(ctx context.Context, o Options, services []Service) error {
	if err := o.check(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.BinDir, 0o755); err != nil {
		return err
	}
	pkgs := []string{"./tools/cmd/healthcheck"}
	for _, s := range services {
		pkgs = append(pkgs, s.MainPackage())
	}
	// One go build for all packages: with -o DIR it writes each main package's binary there.
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", o.BinDir + "/"}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.RepoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("imagebuild: go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Image assembles one service's image from the binaries in o.BinDir.
func Image(s Service, o Options) (v1.Image, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(filepath.Join(o.BinDir, s.Name))
	if err != nil {
		return nil, fmt.Errorf("imagebuild: %s binary: %w", s.Name, err)
	}
	probe, err := os.ReadFile(filepath.Join(o.BinDir, "healthcheck"))
	if err != nil {
		return nil, fmt.Errorf("imagebuild: healthcheck binary: %w", err)
	}
	ca, err := os.ReadFile(o.CACerts)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: CA bundle: %w", err)
	}
	if !bytes.Contains(ca, []byte("BEGIN CERTIFICATE")) {
		return nil, fmt.Errorf("imagebuild: CA bundle %s holds no PEM certificate", o.CACerts)
	}
	tarBytes, err := rootfs(s, o.Created, ca, bin, probe)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: o.Created}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: created, CreatedBy: "sagasuite imagebuild " + s.Name, Comment: "CA bundle, passwd/group, " + s.Name + " and healthcheck binaries",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS = "linux"
	cf.Architecture = o.GOARCH
	ports := map[string]struct{}{}
	for _, p := range s.Ports() {
		ports[strconv.Itoa(p)+"/tcp"] = struct{}{}
	}
	cf.Config = v1.Config{
		User:         User,
		Entrypoint:   []string{s.Entrypoint()},
		Env:          s.Env(),
		ExposedPorts: ports,
		Labels:       s.Labels(o.Tag, o.Revision),
		WorkingDir:   HomeDir,
		Healthcheck: &v1.HealthConfig{
			Test: s.HealthcheckTest(), Interval: HealthInterval, Timeout: HealthTimeout,
			StartPeriod: HealthStartPeriod, Retries: HealthRetries,
		},
	}
	return mutate.ConfigFile(img, cf)
}

// passwd and group are distroless's, so a Dockerfile build on distroless/static:nonroot and
// this image name the same users.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
)

// rootfs is the image's only layer, entries in a fixed order with fixed times and owners.
func rootfs(s Service, created time.Time, ca, bin, probe []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: created, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: created, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return dir("etc/ssl", 0o755, 0) },
		func() error { return dir("etc/ssl/certs", 0o755, 0) },
		func() error { return file("etc/ssl/certs/ca-certificates.crt", 0o644, ca) },
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir("home/nonroot", 0o700, UID) },
		// /tmp for libraries that expect one; Kubernetes mounts an emptyDir over it when the root
		// filesystem is read-only.
		func() error { return dir("tmp", 0o1777, 0) },
		func() error { return dir("usr", 0o755, 0) },
		func() error { return dir("usr/local", 0o755, 0) },
		func() error { return dir("usr/local/bin", 0o755, 0) },
		func() error { return file("usr/local/bin/healthcheck", 0o755, probe) },
		func() error { return file("usr/local/bin/"+s.Name, 0o755, bin) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteLayout writes the images of the given services into a new OCI layout at dir, each
// annotated with its name (sagasuite/<service>:<tag>). dir must not exist, or be an OCI layout
// (it is then replaced, so old blobs do not pile up); anything else is refused.
func WriteLayout(dir string, o Options, services []Service) (map[string]v1.Hash, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return nil, fmt.Errorf("imagebuild: %s exists and is not an OCI layout; not replacing it", dir)
		}
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return nil, err
	}
	digests := map[string]v1.Hash{}
	for _, s := range services {
		img, err := Image(s, o)
		if err != nil {
			return nil, err
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{RefNameAnnotation: s.Ref(o.Tag)})); err != nil {
			return nil, fmt.Errorf("imagebuild: writing %s: %w", s.Name, err)
		}
		if digests[s.Name], err = img.Digest(); err != nil {
			return nil, err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	return digests, nil
}
