package main

import (
	"strings"
	"testing"
)

func TestBenchUsage(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"help", []string{"bench", "-h"}, exitOK, "--concurrency"},
		{"bad mix", []string{"bench", "--mix", "success=90"}, exitError, "add up to 90"},
		{"rate and concurrency", []string{"bench", "--rate", "5", "--concurrency", "2", "--order", "127.0.0.1:1"}, exitError, "not both"},
		{"stray argument", []string{"bench", "now"}, exitError, `unexpected arguments ["now"]`},
		{"help lists the instruments", []string{"bench", "-h"}, exitOK, "--servers"},
		{"bad servers", []string{"bench", "--servers", "redis=127.0.0.1:6379"}, exitError, "unknown [redis]"},
		{"unreachable", []string{"bench", "--orders", "1", "--inventory", "127.0.0.1:1"}, exitError, "seed product"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := sagactl(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.inStderr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, tc.code, tc.inStderr)
			}
		})
	}
}
