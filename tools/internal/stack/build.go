package stack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

const modulePrefix = "github.com/sagasuite/sagasuite/"

// servicePackages maps each service name to its main package.
func servicePackages(names []string) map[string]string {
	pkgs := make(map[string]string, len(names))
	for _, name := range names {
		pkgs[name] = modulePrefix + "services/" + name + "/cmd/" + name
	}
	return pkgs
}

// Build compiles the five services into dir (dir/order, dir/inventory, …),
// in one `go build` from the repository root, so go.work applies.
func Build(ctx context.Context, dir string) error {
	return build(ctx, dir, servicePackages(suite.Services))
}

// build compiles pkgs (binary name → import path) into dir; each binary is
// named after its package's last element, which must be its key.
func build(ctx context.Context, dir string, pkgs map[string]string) error {
	root, err := repoRoot(ctx)
	if err != nil {
		return err
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	args := []string{"build", "-o", absDir + string(filepath.Separator)}
	names := make([]string, 0, len(pkgs))
	for name, pkg := range pkgs {
		if filepath.Base(pkg) != name {
			return fmt.Errorf("build: package %s would not produce a binary named %s", pkg, name)
		}
		args = append(args, pkg)
		names = append(names, name)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: `go %s` in %s failed (%v):\n%s",
			strings.Join(names, ", "), strings.Join(args, " "), root, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// repoRoot is the directory of the go.work that governs the current directory.
func repoRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOWORK").Output()
	if err != nil {
		return "", fmt.Errorf("build: go env GOWORK: %w", err)
	}
	gowork := strings.TrimSpace(string(out))
	if gowork == "" || gowork == "off" {
		return "", fmt.Errorf("build: not inside the sagasuite workspace (go env GOWORK is %q); run from the repository", gowork)
	}
	return filepath.Dir(gowork), nil
}

// MainWithBinaries is a test package's TestMain body when its tests start
// stacks: build the five services once into a temporary dir (bounded: a cold
// build on 2 cores takes minutes), hand the dir to setBinDir, run the tests,
// remove the dir and exit with their status. name prefixes its messages.
func MainWithBinaries(m *testing.M, name string, setBinDir func(string)) {
	dir, err := os.MkdirTemp("", "sagasuite-"+name+"-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	started := time.Now()
	err = Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "%s: built the five services in %s\n", name, time.Since(started).Round(time.Millisecond))
	setBinDir(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
