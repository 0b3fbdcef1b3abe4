package grpcserver

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/auth"
)

// The token parsing path through the interceptor, fed any authorization
// metadata: never a panic; only the real token gets through; every other
// value is Unauthenticated with the fixed text.
func FuzzAuthInterceptor(f *testing.F) {
	key, err := auth.GenerateSigningKey("k1")
	if err != nil {
		f.Fatal(err)
	}
	signer, err := auth.NewSigner(key, "iss", "aud")
	if err != nil {
		f.Fatal(err)
	}
	public := signer.PublicJWKS()
	v, err := auth.NewVerifier(context.Background(), auth.VerifierConfig{Keys: &public, Issuer: "iss", Audience: "aud"})
	if err != nil {
		f.Fatal(err)
	}
	good, err := signer.Mint(auth.Principal{Subject: "c1", Roles: []auth.Role{auth.RoleCustomer}}, time.Now(), 24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	const method = "/test.Service/Method"
	a := &authenticator{
		Auth:   Auth{Verifier: v, Policy: Policy{method: {auth.RoleCustomer}}},
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, seed := range []string{"", "Bearer", "Bearer ", "Bearer " + good, "bearer  " + good + " ", "Basic " + good,
		"Bearer a.b.c", "Bearer " + good + "x", "Bearer " + strings.Replace(good, ".", "..", 1), "Bearer eyJhbGciOiJub25lIn0.e30.",
		"Bearer \x00", "Bearer " + strings.Repeat("e", 9000)} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, value string, twice bool) {
		md := metadata.MD{}
		md.Append("authorization", value)
		if twice {
			md.Append("authorization", value)
		}
		ctx := metadata.NewIncomingContext(context.Background(), md)
		var admitted auth.Principal
		_, err := a.unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
			admitted, _ = auth.FromContext(ctx)
			return nil, nil
		})
		if err == nil {
			if twice || admitted.Subject != "c1" {
				t.Fatalf("admitted %+v for %q (twice=%v)", admitted, value, twice)
			}
			return
		}
		if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != msgUnauthenticated {
			t.Fatalf("%q: %v, want Unauthenticated with the fixed text", value, err)
		}
	})
}
