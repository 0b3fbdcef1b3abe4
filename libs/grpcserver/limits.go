package grpcserver

import (
	"crypto/tls"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// Production bounds a zero Limits field falls back to.
const (
	// DefaultMaxConcurrentStreams: concurrent calls on one connection.
	DefaultMaxConcurrentStreams = 100
	// DefaultMaxRecvMsgBytes: the largest request (CreateOrder's 100 lines
	// fit in a few KiB); grpc-go's own default is 4 MiB.
	DefaultMaxRecvMsgBytes = 1 << 20
	// DefaultMaxSendMsgBytes: the largest answer (a page of 100 orders).
	DefaultMaxSendMsgBytes = 4 << 20
	// DefaultKeepaliveMinTime: clients pinging more often are cut off.
	DefaultKeepaliveMinTime = 30 * time.Second
	// DefaultKeepaliveTime and DefaultKeepaliveTimeout: an idle connection
	// is pinged after 2 min and dropped when the ping goes unanswered 20 s.
	DefaultKeepaliveTime    = 2 * time.Minute
	DefaultKeepaliveTimeout = 20 * time.Second
	// DefaultMaxConnectionIdle: a connection without calls is closed.
	DefaultMaxConnectionIdle = 15 * time.Minute
	// DefaultMaxConnectionAgeGrace: how long calls may run on after
	// MaxConnectionAge asked the client to reconnect.
	DefaultMaxConnectionAgeGrace = time.Minute
)

// Limits bound the cost one caller can put on the server; a zero field
// takes its Default… value. Per-method bounds (page sizes, open watch
// streams) live with the methods.
type Limits struct {
	MaxConcurrentStreams uint32
	MaxRecvMsgBytes      int
	MaxSendMsgBytes      int
	// KeepaliveMinTime is the enforcement policy: a client pinging more
	// often than this, or pinging without an open call, gets GOAWAY.
	KeepaliveMinTime time.Duration
	// KeepaliveTime, KeepaliveTimeout and MaxConnectionIdle are the
	// server's own keepalive.
	KeepaliveTime     time.Duration
	KeepaliveTimeout  time.Duration
	MaxConnectionIdle time.Duration
	// MaxConnectionAge: zero is no limit.
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// withDefaults is l with every zero field at its default.
func (l Limits) withDefaults() Limits {
	l.MaxConcurrentStreams = orDefault(l.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	l.MaxRecvMsgBytes = orDefault(l.MaxRecvMsgBytes, DefaultMaxRecvMsgBytes)
	l.MaxSendMsgBytes = orDefault(l.MaxSendMsgBytes, DefaultMaxSendMsgBytes)
	l.KeepaliveMinTime = orDefault(l.KeepaliveMinTime, DefaultKeepaliveMinTime)
	l.KeepaliveTime = orDefault(l.KeepaliveTime, DefaultKeepaliveTime)
	l.KeepaliveTimeout = orDefault(l.KeepaliveTimeout, DefaultKeepaliveTimeout)
	l.MaxConnectionIdle = orDefault(l.MaxConnectionIdle, DefaultMaxConnectionIdle)
	l.MaxConnectionAgeGrace = orDefault(l.MaxConnectionAgeGrace, DefaultMaxConnectionAgeGrace)
	return l
}

// serverOptions turns the limits (and TLS, when set) into grpc options.
func (l Limits) serverOptions(tlsConfig *tls.Config) []grpc.ServerOption {
	l = l.withDefaults()
	params := keepalive.ServerParameters{
		Time: l.KeepaliveTime, Timeout: l.KeepaliveTimeout, MaxConnectionIdle: l.MaxConnectionIdle,
	}
	if l.MaxConnectionAge > 0 {
		params.MaxConnectionAge, params.MaxConnectionAgeGrace = l.MaxConnectionAge, l.MaxConnectionAgeGrace
	}
	opts := []grpc.ServerOption{
		grpc.MaxConcurrentStreams(l.MaxConcurrentStreams),
		grpc.MaxRecvMsgSize(l.MaxRecvMsgBytes),
		grpc.MaxSendMsgSize(l.MaxSendMsgBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: l.KeepaliveMinTime, PermitWithoutStream: false}),
		grpc.KeepaliveParams(params),
	}
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	return opts
}
