package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeAPIServer writes a script standing in for kube-apiserver.
func fakeAPIServer(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kube-apiserver")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// Start fails with a clear error, within its bound, and cleans up, when the
// apiserver never becomes ready or dies at once; etcd is real in both cases.
func TestStartFailsClearly(t *testing.T) {
	cases := []struct {
		name, script, want string
	}{
		{"apiserver exits", "echo 'flag provided but not defined' >&2; exit 1", "exited during startup"},
		{"apiserver never ready", "exec sleep 600", "not ready on https://127.0.0.1:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			started := time.Now()
			c, err := Start(context.Background(), Options{APIServerBin: fakeAPIServer(t, tc.script), ReadyTimeout: 5 * time.Second})
			if err == nil {
				c.Stop()
				t.Fatal("Start succeeded with a fake apiserver")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			// The 5 s bound plus Stop's 15 s grace is the most it may take.
			if elapsed := time.Since(started); elapsed > 60*time.Second {
				t.Errorf("Start took %s to fail; its bound is 5 s", elapsed)
			}
		})
	}
}

func TestStartNeedsBinary(t *testing.T) {
	if _, err := Start(context.Background(), Options{}); err == nil || !strings.Contains(err.Error(), "no kube-apiserver binary") {
		t.Fatalf("Start without a binary: %v", err)
	}
	if _, err := Start(context.Background(), Options{APIServerBin: filepath.Join(t.TempDir(), "absent")}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Start with an absent binary: %v", err)
	}
}
