package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/auth"
)

// TokenVerifier turns a bearer token into the caller (*auth.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Principal, error)
}

// Policy is a service's declared authorization: full method name
// ("/sagasuite.order.v1.OrderService/GetOrder") → the roles that may call it.
// A method absent from the table is refused; New refuses to start a server
// whose registered methods and table differ.
type Policy map[string][]auth.Role

// Auth turns on authentication and authorization for every method except
// health checking and reflection.
type Auth struct {
	Verifier TokenVerifier
	Policy   Policy
}

// The answers a refused caller gets: fixed, so they help no one probe.
const (
	msgUnauthenticated  = "missing or invalid bearer token"
	msgPermissionDenied = "permission denied"
)

// maxTokenBytes bounds what is handed to the JOSE parser; real tokens are
// well under 2 KiB.
const maxTokenBytes = 8 << 10

// CheckPolicy reports every method the services in descs serve that policy
// does not cover, every entry naming no such method (a typo would otherwise
// refuse a method silently) and every entry granting no role.
func CheckPolicy(policy Policy, descs ...*grpc.ServiceDesc) error {
	served := map[string]bool{}
	for _, d := range descs {
		for _, m := range d.Methods {
			served["/"+d.ServiceName+"/"+m.MethodName] = true
		}
		for _, s := range d.Streams {
			served["/"+d.ServiceName+"/"+s.StreamName] = true
		}
	}
	return checkPolicy(policy, served)
}

func checkPolicy(policy Policy, served map[string]bool) error {
	var problems []string
	for m := range served {
		if _, ok := policy[m]; !ok {
			problems = append(problems, m+" has no policy")
		}
	}
	for m, roles := range policy {
		switch {
		case !served[m]:
			problems = append(problems, "policy names "+m+", which is not served")
		case len(roles) == 0:
			problems = append(problems, m+" grants no role")
		}
		for _, r := range roles {
			if !slices.Contains(auth.Roles, r) {
				problems = append(problems, fmt.Sprintf("%s grants unknown role %q", m, r))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return errors.New("auth policy: " + strings.Join(problems, "; "))
}

// registeredMethods lists the methods of the server's own services.
func registeredMethods(s *grpc.Server) map[string]bool {
	methods := map[string]bool{}
	for name, info := range s.GetServiceInfo() {
		if isPublic("/" + name + "/") {
			continue
		}
		for _, m := range info.Methods {
			methods["/"+name+"/"+m.Name] = true
		}
	}
	return methods
}

// isPublic tells the methods that need no token: probes must work without
// one, and reflection (when enabled) describes the API, not its data.
func isPublic(fullMethod string) bool {
	service, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return "/"+service+"/" == healthMethodPrefix || isReflection(service)
}

type authenticator struct {
	Auth
	logger *slog.Logger
}

// authorize returns ctx carrying the verified caller, or the status to
// answer. The token is checked before the policy, so an unauthenticated
// caller cannot tell which methods exist or whom they admit.
func (a *authenticator) authorize(ctx context.Context, method string) (context.Context, error) {
	if isPublic(method) {
		return ctx, nil
	}
	token, reason := bearerToken(ctx)
	if reason != "" {
		a.logger.InfoContext(ctx, "gRPC call not authenticated", slog.String("grpc.method", method), slog.String("reason", reason))
		return nil, status.Error(codes.Unauthenticated, msgUnauthenticated)
	}
	p, err := a.Verifier.Verify(ctx, token)
	if err != nil {
		// The verifier's text names the failed check, never the token.
		a.logger.InfoContext(ctx, "gRPC call not authenticated", slog.String("grpc.method", method), slog.String("reason", err.Error()))
		return nil, status.Error(codes.Unauthenticated, msgUnauthenticated)
	}
	allowed, declared := a.Policy[method]
	if !declared || !slices.ContainsFunc(p.Roles, func(r auth.Role) bool { return slices.Contains(allowed, r) }) {
		a.logger.InfoContext(ctx, "gRPC call not permitted", slog.String("grpc.method", method),
			slog.String("subject", p.Subject), slog.Any("roles", p.Roles), slog.Bool("declared", declared))
		return nil, status.Error(codes.PermissionDenied, msgPermissionDenied)
	}
	return auth.WithPrincipal(ctx, p), nil
}

// bearerToken reads the one "authorization: Bearer <token>" header, or says
// why there is none.
func bearerToken(ctx context.Context) (token, reason string) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	switch {
	case len(values) == 0:
		return "", "no authorization header"
	case len(values) > 1:
		return "", "more than one authorization header"
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	token = strings.TrimSpace(token)
	switch {
	case !strings.EqualFold(scheme, "bearer"):
		return "", "authorization header is not a bearer token"
	case token == "":
		return "", "empty bearer token"
	case len(token) > maxTokenBytes:
		return "", fmt.Sprintf("bearer token longer than %d bytes", maxTokenBytes)
	}
	return token, ""
}

func (a *authenticator) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
}

// authInterceptors returns the interceptors for opts.Auth; without it they
// pass every call through (the library's own tests; every service sets it,
// and service.Run refuses to start without a verifier).
func authInterceptors(a *Auth, logger *slog.Logger) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor, error) {
	if a == nil {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
				return handler(ctx, req)
			}, func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
				return handler(srv, ss)
			}, nil
	}
	if a.Verifier == nil {
		return nil, nil, errors.New("grpcserver: Auth needs a Verifier")
	}
	authn := &authenticator{Auth: *a, logger: logger}
	return authn.unary, authn.stream, nil
}
