// Package cluster runs a throwaway Kubernetes control plane on loopback: etcd
// embedded in this process and a kube-apiserver binary as a child process, with
// self-generated certificates, a static admin token and AlwaysAllow authorization.
// It exists for server-side dry-runs, so nothing else (scheduler, controllers,
// kubelet) is started.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
)

// Options configure Start. APIServerBin is required; zero timeouts take defaults.
type Options struct {
	APIServerBin string        // path to a kube-apiserver binary
	ReadyTimeout time.Duration // bound on etcd + kube-apiserver becoming ready (default 120 s)
	Log          io.Writer     // progress lines; nil discards
}

// Cluster is a running control plane. Stop it exactly once (Stop is idempotent).
type Cluster struct {
	Config *rest.Config // admin client config (token + the apiserver's CA)
	URL    string

	dir       string
	etcd      *embed.Etcd
	apiserver *exec.Cmd
	exited    chan struct{} // closed when the apiserver process has been waited for
	logPath   string
	stopped   bool
}

// Start brings up etcd and kube-apiserver under a fresh temp dir and waits for
// /readyz. On any error everything started so far is stopped again.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.APIServerBin == "" {
		return nil, errors.New("cluster: no kube-apiserver binary given")
	}
	if _, statErr := os.Stat(opts.APIServerBin); statErr != nil {
		return nil, fmt.Errorf("cluster: kube-apiserver binary: %w", statErr)
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 120 * time.Second
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	dir, err := os.MkdirTemp("", "k8sverify-")
	if err != nil {
		return nil, fmt.Errorf("cluster: temp dir: %w", err)
	}
	c := &Cluster{dir: dir, exited: make(chan struct{}), logPath: filepath.Join(dir, "kube-apiserver.log")}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	readyCtx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()

	ports, err := freeLoopbackPorts(3)
	if err != nil {
		return nil, err
	}
	etcdClientPort, etcdPeerPort, apiPort := ports[0], ports[1], ports[2]

	started := time.Now()
	if err := c.startEtcd(readyCtx, etcdClientPort, etcdPeerPort); err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "etcd ready on 127.0.0.1:%d (%s)\n", etcdClientPort, time.Since(started).Round(time.Millisecond))

	certPEM, err := c.writeCredentials()
	if err != nil {
		return nil, err
	}
	token, err := c.writeTokenFile()
	if err != nil {
		return nil, err
	}
	if err := c.startAPIServer(opts.APIServerBin, etcdClientPort, apiPort); err != nil {
		return nil, err
	}
	c.URL = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	c.Config = &rest.Config{
		Host:            c.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: certPEM},
		QPS:             200,
		Burst:           400,
		Timeout:         60 * time.Second,
	}
	if err := c.waitReady(readyCtx); err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "kube-apiserver ready on %s (%s since start)\n", c.URL, time.Since(started).Round(time.Millisecond))
	return c, nil
}

func (c *Cluster) startEtcd(ctx context.Context, clientPort, peerPort int) error {
	cfg := embed.NewConfig()
	cfg.Name = "k8sverify"
	cfg.Dir = filepath.Join(c.dir, "etcd")
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{clientURL}, []url.URL{clientURL}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peerURL}, []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(c.dir, "etcd.log")}
	// Throwaway data: no fsync per commit keeps a busy machine's disk out of the way.
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("cluster: start etcd: %w", err)
	}
	c.etcd = e
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("cluster: etcd failed: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("cluster: etcd not ready: %w", context.Cause(ctx))
	}
}

// writeCredentials writes the apiserver's serving certificate (self-signed, its CA
// bundled) and a service-account signing key; it returns the certificate PEM the
// client trusts.
func (c *Cluster) writeCredentials() ([]byte, error) {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"})
	if err != nil {
		return nil, fmt.Errorf("cluster: serving certificate: %w", err)
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("cluster: service-account key: %w", err)
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("cluster: service-account public key: %w", err)
	}
	files := map[string][]byte{
		"serving.crt": certPEM,
		"serving.key": keyPEM,
		"sa.key":      pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}),
		"sa.pub":      pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(c.dir, name), data, 0o600); err != nil {
			return nil, fmt.Errorf("cluster: write %s: %w", name, err)
		}
	}
	return certPEM, nil
}

func (c *Cluster) writeTokenFile() (string, error) {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("cluster: token: %w", err)
	}
	token := hex.EncodeToString(raw)
	// token,user,uid,"groups": system:masters is all an AlwaysAllow server needs anyway.
	line := token + `,k8sverify-admin,k8sverify-admin,"system:masters"` + "\n"
	if err := os.WriteFile(filepath.Join(c.dir, "tokens.csv"), []byte(line), 0o600); err != nil {
		return "", fmt.Errorf("cluster: write token file: %w", err)
	}
	return token, nil
}

func (c *Cluster) startAPIServer(bin string, etcdPort, apiPort int) error {
	logFile, err := os.Create(c.logPath)
	if err != nil {
		return fmt.Errorf("cluster: apiserver log: %w", err)
	}
	args := []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(etcdPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(c.dir, "certs"),
		"--tls-cert-file=" + filepath.Join(c.dir, "serving.crt"),
		"--tls-private-key-file=" + filepath.Join(c.dir, "serving.key"),
		"--token-auth-file=" + filepath.Join(c.dir, "tokens.csv"),
		"--authorization-mode=AlwaysAllow",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(c.dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(c.dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=false", // the suite's manifests must not need privileged pods
		"--profiling=false",
		"--v=1",
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If this process dies without running Stop (SIGKILL), the kernel kills the child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("cluster: start kube-apiserver: %w", err)
	}
	c.apiserver = cmd
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(c.exited)
	}()
	return nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	transportCfg := rest.CopyConfig(c.Config)
	client, err := rest.HTTPClientFor(transportCfg)
	if err != nil {
		return fmt.Errorf("cluster: http client: %w", err)
	}
	client.Timeout = 5 * time.Second
	lastProblem := "no answer yet"
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/readyz?verbose", nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			lastProblem = fmt.Sprintf("/readyz %d: %s", resp.StatusCode, failingChecks(string(body)))
		} else {
			lastProblem = err.Error()
		}
		select {
		case <-c.exited:
			return fmt.Errorf("cluster: kube-apiserver exited during startup (%s); log tail:\n%s", c.apiserver.ProcessState, c.LogTail(30))
		case <-ctx.Done():
			if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return fmt.Errorf("cluster: stopped while kube-apiserver was starting: %w", context.Cause(ctx))
			}
			return fmt.Errorf("cluster: kube-apiserver not ready on %s: %w; last: %s; log tail:\n%s", c.URL, context.Cause(ctx), lastProblem, c.LogTail(30))
		case <-tick.C:
		}
	}
}

// failingChecks keeps the "[-]..." lines of a verbose /readyz body.
func failingChecks(body string) string {
	var failing []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "[-]") {
			failing = append(failing, line)
		}
	}
	if len(failing) == 0 {
		return strings.TrimSpace(body)
	}
	return strings.Join(failing, "; ")
}

// LogTail returns the last n lines of the apiserver's log, for error messages.
func (c *Cluster) LogTail(n int) string {
	data, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(no apiserver log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop terminates kube-apiserver (SIGTERM, then SIGKILL after 15 s), closes etcd
// and removes the data dir.
func (c *Cluster) Stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	if c.apiserver != nil && c.apiserver.Process != nil {
		_ = c.apiserver.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(15 * time.Second):
			_ = c.apiserver.Process.Kill()
			<-c.exited
		}
	}
	if c.etcd != nil {
		c.etcd.Close()
	}
	_ = os.RemoveAll(c.dir)
}

// freeLoopbackPorts picks n distinct ports in [20000, 32768) that are free on
// 127.0.0.1 now: below Linux's ephemeral range, so no client's outgoing
// connection can take them between the pick and the servers' bind.
func freeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	seen := map[int]bool{}
	for attempt := 0; attempt < 200 && len(ports) < n; attempt++ {
		r, err := rand.Int(rand.Reader, big.NewInt(32768-20000))
		if err != nil {
			return nil, fmt.Errorf("cluster: pick port: %w", err)
		}
		port := 20000 + int(r.Int64())
		if seen[port] {
			continue
		}
		seen[port] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("cluster: found only %d free loopback ports below 32768 in 200 tries", len(ports))
	}
	return ports, nil
}
