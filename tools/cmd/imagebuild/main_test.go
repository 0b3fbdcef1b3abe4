package main

import (
	"strings"
	"testing"
)

// Bad input stops the tool with a clear error before anything is built.
func TestRunRefusesBadInput(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		epoch   string
		wantErr string
	}{
		{"no out", []string{"-revision", "abc"}, "", "-out is required"},
		{"bad epoch", []string{"-out", t.TempDir() + "/o", "-revision", "abc"}, "yesterday", "SOURCE_DATE_EPOCH"},
		{"negative epoch", []string{"-out", t.TempDir() + "/o", "-revision", "abc"}, "-5", "SOURCE_DATE_EPOCH"},
		{"unknown service", []string{"-out", t.TempDir() + "/o", "-revision", "abc", "-services", "order,billing"}, "", `unknown service "billing"`},
		{"latest", []string{"-out", t.TempDir() + "/o", "-revision", "abc", "-tag", "latest"}, "", "refusing tag"},
		{"no revision", []string{"-out", t.TempDir() + "/o"}, "", "Revision is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", c.epoch)
			err := run(c.args)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("run(%q) = %v, want an error containing %q", c.args, err, c.wantErr)
			}
		})
	}
}
