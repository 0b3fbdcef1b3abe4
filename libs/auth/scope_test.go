package auth

import (
	"context"
	"errors"
	"testing"
)

func TestCustomerFilterAndVisible(t *testing.T) {
	bg := context.Background()
	customer := WithPrincipal(bg, Principal{Subject: "c1", Roles: []Role{RoleCustomer}})
	nameless := WithPrincipal(bg, Principal{Roles: []Role{RoleCustomer}})
	operator := WithPrincipal(bg, Principal{Subject: "ops", Roles: []Role{RoleOperator}})
	cases := []struct {
		name      string
		ctx       context.Context
		requested string
		want      string
		denied    bool
	}{
		{"customer, own", customer, "c1", "c1", false},
		{"customer, empty filled in", customer, "", "c1", false},
		{"customer, foreign", customer, "c2", "", true},
		{"customer without subject", nameless, "", "", true},
		{"operator, any", operator, "c2", "c2", false},
		{"in-process, any", bg, "c2", "c2", false},
	}
	for _, c := range cases {
		got, err := CustomerFilter(c.ctx, c.requested)
		if got != c.want || errors.Is(err, ErrForeignCustomer) != c.denied {
			t.Errorf("%s: CustomerFilter = %q, %v", c.name, got, err)
		}
	}
	for name, c := range map[string]struct {
		ctx  context.Context
		of   string
		want bool
	}{
		"own": {customer, "c1", true}, "foreign": {customer, "c2", false}, "nameless": {nameless, "", false},
		"operator": {operator, "c2", true}, "in-process": {bg, "c2", true},
	} {
		if got := Visible(c.ctx, c.of); got != c.want {
			t.Errorf("%s: Visible(%q) = %v", name, c.of, got)
		}
	}
}
