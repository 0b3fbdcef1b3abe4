package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ReportPath is where a long real-stack test appends its figures: the path
// in the environment variable env when set, else $SAGASUITE_HOME/reports/file
// (SAGASUITE_HOME defaults to ~/.cache/sagasuite).
func ReportPath(env, file string) (string, error) {
	if path := os.Getenv(env); path != "" {
		return path, nil
	}
	home := os.Getenv("SAGASUITE_HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no home directory (%w); set %s", err, env)
		}
		home = filepath.Join(h, ".cache", "sagasuite")
	}
	return filepath.Join(home, "reports", file), nil
}

// AppendReport appends one line, stamped with the time and the test's name,
// to the report file at path; a failure to write fails the test.
func AppendReport(t testing.TB, path, line string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Errorf("report: %v", err)
		return
	}
	file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	defer file.Close()
	if _, err := fmt.Fprintf(file, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339), t.Name(), line); err != nil {
		t.Errorf("report: %v", err)
		return
	}
	t.Logf("figures appended to %s", path)
}

// KeepLogs copies, when the test failed, the log of every process slot of
// the stack and the extra files (source → name) into a new directory
// under parent named after the test and the time, since the stack deletes
// its logs at the end. Register it with t.Cleanup after New, so it runs
// before the stack's own cleanup.
func (s *Stack) KeepLogs(t testing.TB, parent string, extra map[string]string) {
	if !t.Failed() {
		return
	}
	dir := filepath.Join(parent, filepath.Base(t.Name())+"-"+time.Now().UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("logs not kept: %v", err)
		return
	}
	copies := map[string]string{}
	for _, name := range s.opts.Services {
		for slot := range s.slotCount(name) {
			copies[s.LogPathOf(name, slot)] = filepath.Join(dir, filepath.Base(s.LogPathOf(name, slot)))
		}
	}
	for from, name := range extra {
		copies[from] = filepath.Join(dir, name)
	}
	for from, to := range copies {
		b, err := os.ReadFile(from)
		if os.IsNotExist(err) {
			continue // a slot that never ran
		}
		if err == nil {
			err = os.WriteFile(to, b, 0o644)
		}
		if err != nil {
			t.Logf("keep log %s: %v", from, err)
		}
	}
	t.Logf("logs of this failed run kept in %s", dir)
}
