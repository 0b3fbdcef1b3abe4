// Command k8sverify starts a throwaway etcd + kube-apiserver on loopback, installs
// the operators' CRDs, and server-side-applies every object of the rendered
// manifests with dry-run and strict field validation. It exits 1 if the server
// rejects anything, 2 if it could not run the check.
//
//	k8sverify -apiserver BIN -crds k8s/platform/crds FILE...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sagasuite/sagasuite/tools/k8sverify/internal/cluster"
	"github.com/sagasuite/sagasuite/tools/k8sverify/internal/verify"
)

func main() {
	os.Exit(run())
}

func run() int {
	apiserverBin := flag.String("apiserver", "", "kube-apiserver binary (required)")
	crdDir := flag.String("crds", "", "directory searched recursively for CRD *.yaml files (absent: none)")
	readyTimeout := flag.Duration("ready-timeout", 120*time.Second, "bound on the control plane becoming ready")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: k8sverify -apiserver BIN [-crds DIR] FILE.yaml...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	files := flag.Args()
	if *apiserverBin == "" || len(files) == 0 {
		flag.Usage()
		return 2
	}
	var crdFiles []string
	if *crdDir != "" {
		var err error
		if crdFiles, err = verify.CRDFiles(*crdDir); err != nil {
			fmt.Fprintf(os.Stderr, "k8s-verify: CRDs: %v\n", err)
			return 2
		}
	}

	// SIGINT/SIGTERM cancel the context; the deferred Stop then still runs.
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	started := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{APIServerBin: *apiserverBin, ReadyTimeout: *readyTimeout, Log: prefixed{}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "k8s-verify: %v\n", err)
		return 2
	}
	defer c.Stop()

	crds, err := verify.InstallCRDs(ctx, c.Config, crdFiles, 60*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "k8s-verify: %v\n", err)
		return 2
	}
	switch {
	case *crdDir != "" && len(crdFiles) == 0:
		fmt.Printf("k8s-verify: no CRD files under %s (absent or empty): no CRDs installed\n", *crdDir)
	case *crdDir != "":
		fmt.Printf("k8s-verify: %d CRDs Established from %d files under %s\n", len(crds), len(crdFiles), *crdDir)
	}
	applier, err := verify.NewApplier(c.Config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "k8s-verify: %v\n", err)
		return 2
	}

	rejected, failed := 0, false
	for _, file := range files {
		result := applier.VerifyFile(ctx, file)
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "k8s-verify: interrupted\n")
			return 2
		}
		name := filepath.Base(file)
		if result.ReadFailure != nil {
			fmt.Printf("k8s-verify: %-32s FAILED: %v\n", name, result.ReadFailure)
			failed = true
			continue
		}
		note := ""
		if len(result.Undeclared) > 0 {
			note = fmt.Sprintf(" (namespaces used but not declared: %v)", result.Undeclared)
		}
		fmt.Printf("k8s-verify: %-32s %3d objects, %d rejected%s\n", name, result.Objects, len(result.Rejections), note)
		for _, r := range result.Rejections {
			fmt.Printf("  REJECTED %s %s: %s\n", r.Kind, r.Name, r.Message)
		}
		rejected += len(result.Rejections)
	}
	fmt.Printf("k8s-verify: %d files, %d rejections (kube-apiserver server-side apply, dry-run, strict field validation; %s)\n",
		len(files), rejected, time.Since(started).Round(100*time.Millisecond))
	switch {
	case failed:
		return 2
	case rejected > 0:
		return 1
	}
	return 0
}

// prefixed writes the cluster's progress lines under the tool's prefix.
type prefixed struct{}

func (prefixed) Write(p []byte) (int, error) {
	fmt.Printf("k8s-verify: %s", p)
	return len(p), nil
}
