// Command healthcheck is the container images' health probe: the images have no shell or
// curl, so Docker's HEALTHCHECK runs this static binary. `healthcheck order` asks
// http://127.0.0.1:<port of ORDER_OPS_ADDR>/readyz (https when ORDER_TLS_CERT_FILE is set) and
// exits 0 on 200, 1 otherwise (Docker's "unhealthy"). Kubernetes ignores HEALTHCHECK and uses
// the gRPC health service instead.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 3*time.Second, "give up after this long")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: healthcheck [-timeout 3s] SERVICE   (asks SERVICE's ops port /readyz)")
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	url, err := readyURL(flag.Arg(0), os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := probe(ctx, url); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// readyURL derives the readiness URL from the service's own variables, so the probe follows
// an overridden <P>_OPS_ADDR or TLS setting.
func readyURL(service string, getenv func(string) string) (string, error) {
	if service == "" || strings.ContainsAny(service, "=/ ") {
		return "", fmt.Errorf("bad service name %q", service)
	}
	prefix := strings.ToUpper(service)
	key := prefix + "_OPS_ADDR"
	addr := getenv(key)
	if addr == "" && getenv(prefix+"_ADDR") != "" {
		// The console has one listener (CONSOLE_ADDR), which also answers /readyz.
		key = prefix + "_ADDR"
		addr = getenv(key)
	}
	if addr == "" {
		return "", fmt.Errorf("%s_OPS_ADDR is not set (the images set it)", prefix)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%s=%q: %v", key, addr, err)
	}
	// A wildcard listen address is reached through loopback.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	if getenv(prefix+"_TLS_CERT_FILE") != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/readyz", nil
}

func probe(ctx context.Context, url string) error {
	client := &http.Client{Transport: &http.Transport{
		// The probe calls its own container; the certificate names the service's DNS name,
		// not the loopback address, and nothing secret is sent.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		Proxy:           nil,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
