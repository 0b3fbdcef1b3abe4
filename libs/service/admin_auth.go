package service

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"
)

// AdminPathPrefix is the ops port's admin API (outbox today). It needs a
// bearer token of an operator or a service identity; /healthz, /readyz and
// /metrics stay open for probes and scrapers.
const AdminPathPrefix = "/admin/"

// AdminRoles may use the ops port's admin API.
var AdminRoles = []auth.Role{auth.RoleOperator, auth.RoleService}

// requireAdmin answers 401 without a valid bearer token and 403 for a
// caller without an admin role, with fixed texts; the reason is logged.
func requireAdmin(verifier grpcserver.TokenVerifier, logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "bearer") || token == "" || len(token) > 8<<10 {
			logger.InfoContext(r.Context(), "admin request not authenticated", slog.String("path", r.URL.Path), slog.String("reason", "no bearer token"))
			w.Header().Set("WWW-Authenticate", `Bearer realm="sagasuite"`)
			writeJSONError(w, http.StatusUnauthorized, "missing or invalid bearer token")
			return
		}
		p, err := verifier.Verify(r.Context(), token)
		if err != nil {
			logger.InfoContext(r.Context(), "admin request not authenticated", slog.String("path", r.URL.Path), slog.String("reason", err.Error()))
			w.Header().Set("WWW-Authenticate", `Bearer realm="sagasuite", error="invalid_token"`)
			writeJSONError(w, http.StatusUnauthorized, "missing or invalid bearer token")
			return
		}
		if !slices.ContainsFunc(p.Roles, func(r auth.Role) bool { return slices.Contains(AdminRoles, r) }) {
			logger.InfoContext(r.Context(), "admin request not permitted", slog.String("path", r.URL.Path),
				slog.String("subject", p.Subject), slog.Any("roles", p.Roles))
			writeJSONError(w, http.StatusForbidden, "permission denied")
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// newVerifier builds the token verifier from <P>_AUTH_*, naming each
// missing variable.
func newVerifier(ctx context.Context, spec Spec) (*auth.Verifier, error) {
	a := spec.Common.Auth
	if err := a.Check(strings.ToUpper(spec.Name)); err != nil {
		return nil, err
	}
	v, err := auth.NewVerifier(ctx, auth.VerifierConfig{JWKSFile: a.JWKSFile, JWKSURL: a.JWKSURL, Issuer: a.Issuer, Audience: a.Audience})
	if err != nil {
		return nil, err
	}
	return v, nil
}
