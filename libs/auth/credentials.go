package auth

import "context"

// TokenCredentials is a gRPC client's per-call credentials: it sends
// "authorization: Bearer <Token>" with every call (grpc.WithPerRPCCredentials).
type TokenCredentials struct {
	Token string
	// AllowInsecure sends the token over a connection without TLS too
	// (loopback tests, the dev stack); gRPC refuses that otherwise.
	AllowInsecure bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c TokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + c.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (c TokenCredentials) RequireTransportSecurity() bool { return !c.AllowInsecure }
