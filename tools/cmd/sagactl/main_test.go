package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sagasuite/sagasuite/tools/internal/audit"
	"github.com/sagasuite/sagasuite/tools/internal/audit/audittest"

	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

// sagactl runs the CLI in-process and returns its exit status and output.
func sagactl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// auditArgs points every service flag at addr.
func auditArgs(addr string, extra ...string) []string {
	args := []string{"audit", "--order", addr, "--inventory", addr, "--payment", addr, "--shipping", addr, "--notification", addr,
		"--customers", audittest.Customer, "--skus", audittest.SKUWidget + "," + audittest.SKUGadget}
	return append(args, extra...)
}

func TestUsage(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"no command", nil, exitError, "usage: sagactl <command>"},
		{"help", []string{"help"}, exitOK, "audit"},
		{"unknown command", []string{"frobnicate"}, exitError, `unknown command "frobnicate"`},
		{"audit without customers", []string{"audit"}, exitError, "--customers is required"},
		{"audit bad flag", []string{"audit", "--nope"}, exitError, "flag provided but not defined: -nope"},
		{"audit stray argument", []string{"audit", "--customers", "c", "extra"}, exitError, `unexpected arguments ["extra"]`},
		{"audit help", []string{"audit", "-h"}, exitOK, "--customers"},
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

func TestAuditTable(t *testing.T) {
	addr := audittest.Serve(t, audittest.Consistent())
	code, out, stderr := sagactl(t, auditArgs(addr)...)
	if code != exitOK {
		t.Fatalf("exit %d on a consistent world; stdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	for _, want := range []string{
		"orders: 4 (completed 1, cancelled 3, pending 0)",
		"WIDGET-1    100         98         0     5         3                    2",
		"     EUR      8490      4500  3990              3990",
		"violations: none",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestAuditViolationsExitOne(t *testing.T) {
	w := audittest.Consistent()
	w.Order(audittest.OrderDeclined).Status = orderv1.OrderStatus_ORDER_STATUS_PENDING
	addr := audittest.Serve(t, w)

	code, out, _ := sagactl(t, auditArgs(addr)...)
	if code != exitProblems || !strings.Contains(out, "violations: 1\n  - Order "+audittest.OrderDeclined) {
		t.Fatalf("exit %d, output:\n%s\nwant exit 1 listing the pending order", code, out)
	}

	code, out, _ = sagactl(t, auditArgs(addr, "--json")...)
	var rep audit.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output is not a report: %v\n%s", err, out)
	}
	if code != exitProblems || rep.Pending != 1 || len(rep.Violations) != 1 {
		t.Fatalf("exit %d, report %+v; want exit 1, one pending order and its violation", code, rep)
	}
}

func TestAuditJSONCleanHasEmptyViolations(t *testing.T) {
	addr := audittest.Serve(t, audittest.Consistent())
	code, out, _ := sagactl(t, auditArgs(addr, "--json", "--wait", "5s")...)
	if code != exitOK || !strings.Contains(out, `"violations": []`) {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

func TestAuditUnreachableIsExitTwo(t *testing.T) {
	code, _, stderr := sagactl(t, auditArgs("127.0.0.1:1", "--timeout", "5s")...)
	if code != exitError || !strings.Contains(stderr, "list orders of customer") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}
