package service_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
)

// fakeOutbox is an outbox.Admin whose status the test sets (the real relays
// are tested on the real stack in libs/outbox and shipping's adapters).
type fakeOutbox struct {
	mu      sync.Mutex
	status  outbox.Status
	retried []string
}

func (f *fakeOutbox) ListOutbox(_ context.Context, parked bool, limit int) ([]outbox.AdminRow, error) {
	return []outbox.AdminRow{{ID: "7", EventID: "e7", Topic: "orders.v1", Attempts: limit}}, nil
}

func (f *fakeOutbox) RetryParked(_ context.Context, id string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id == "404" {
		return 0, outbox.ErrNotParked
	}
	f.retried = append(f.retried, id)
	return 1, nil
}

func (f *fakeOutbox) Counts(context.Context) (outbox.Gauges, error) {
	return outbox.Gauges{Parked: 1}, nil
}

func (f *fakeOutbox) RelayStatus() outbox.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeOutbox) set(s outbox.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = outbox.Status{State: s, LastError: "store down"}
}

// Spec.Outbox serves the admin API on the ops port and makes readiness
// follow the relay: not ready while it fails, ready when it works again.
func TestOutboxAdminOnTheOpsPortAndInReadiness(t *testing.T) {
	s := spec(t, testenv.UniqueName("svctest-")+".")
	fake := &fakeOutbox{}
	fake.set(outbox.StateFailing)
	s.Outbox = fake
	addrs := make(chan net.Addr, 1)
	s.OnListening = func(_, o net.Addr) { addrs <- o }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, s) }()
	t.Cleanup(func() { cancel(); <-done })
	var ops string
	select {
	case a := <-addrs:
		ops = "http://" + a.String()
	case err := <-done:
		t.Fatalf("Run ended early: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("service did not listen within 60s")
	}
	operator := servicetest.Token(t, auth.Principal{Subject: "op", Roles: []auth.Role{auth.RoleOperator}})
	statusAs := func(token, method, path string) int {
		req, _ := http.NewRequest(method, ops+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	status := func(method, path string) int { return statusAs(operator, method, path) }
	if code := status("GET", "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the relay failing: %d, want 503", code)
	}
	fake.set(outbox.StateStandby)
	if code := status("GET", "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with the relay standing by: %d, want 200", code)
	}

	req, _ := http.NewRequest("GET", ops+outbox.AdminListPath+"?state=parked&limit=5", nil)
	req.Header.Set("Authorization", "Bearer "+operator)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list outbox.AdminList
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || list.Service != "svctest" || len(list.Rows) != 1 || list.Rows[0].Attempts != 5 || list.Relay.State != outbox.StateStandby {
		t.Fatalf("list: %+v, %v", list, err)
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", outbox.AdminListPath + "?state=sent", http.StatusBadRequest},
		{"GET", outbox.AdminListPath + "?limit=0", http.StatusBadRequest},
		{"POST", outbox.AdminRetryPath, http.StatusBadRequest},
		{"POST", outbox.AdminRetryPath + "?id=1&all=true", http.StatusBadRequest},
		{"POST", outbox.AdminRetryPath + "?id=404", http.StatusNotFound},
		{"GET", outbox.AdminRetryPath + "?id=1", http.StatusMethodNotAllowed},
		{"POST", outbox.AdminRetryPath + "?id=9", http.StatusOK},
		{"POST", outbox.AdminRetryPath + "?all=true", http.StatusOK},
	} {
		if code := status(tc.method, tc.path); code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, code, tc.want)
		}
	}

	// The admin API needs an operator or a service identity; probes and
	// metrics stay open.
	customer := servicetest.Token(t, auth.Principal{Subject: "c1", Roles: []auth.Role{auth.RoleCustomer}})
	catalog := servicetest.Token(t, auth.Principal{Subject: "cat", Roles: []auth.Role{auth.RoleCatalogAdmin}})
	expired := servicetest.Mint(t, auth.Principal{Subject: "op", Roles: []auth.Role{auth.RoleOperator}}, servicetest.Audience, time.Now().Add(-2*time.Hour), time.Hour)
	service := servicetest.Token(t, servicetest.ServiceIdentity)
	for _, tc := range []struct {
		name, token, method, path string
		want                      int
	}{
		{"no token", "", "GET", outbox.AdminListPath, http.StatusUnauthorized},
		{"no token", "", "POST", outbox.AdminRetryPath + "?all=true", http.StatusUnauthorized},
		{"garbage", "x.y.z", "GET", outbox.AdminListPath, http.StatusUnauthorized},
		{"expired", expired, "GET", outbox.AdminListPath, http.StatusUnauthorized},
		{"customer", customer, "GET", outbox.AdminListPath, http.StatusForbidden},
		{"catalog admin", catalog, "POST", outbox.AdminRetryPath + "?id=9", http.StatusForbidden},
		{"service", service, "GET", outbox.AdminListPath, http.StatusOK},
		{"no token", "", "GET", "/healthz", http.StatusOK},
		{"no token", "", "GET", "/readyz", http.StatusOK},
		{"no token", "", "GET", "/metrics", http.StatusOK},
	} {
		if code := statusAs(tc.token, tc.method, tc.path); code != tc.want {
			t.Errorf("%s %s as %s: %d, want %d", tc.method, tc.path, tc.name, code, tc.want)
		}
	}
	if fake.retried == nil || len(fake.retried) != 2 || fake.retried[0] != "9" || fake.retried[1] != "" {
		t.Errorf("retried %q, want [9, all]", fake.retried)
	}
}
