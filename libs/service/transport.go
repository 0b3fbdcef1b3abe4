package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/grpcserver"
	"github.com/sagasuite/sagasuite/libs/tlsfiles"
)

// ensureOwnTopics creates the topics the service produces to. A failure is
// logged, not fatal: where topic creation is not allowed the topics must
// exist already, and the relay reports it if they do not.
func ensureOwnTopics(ctx context.Context, spec Spec, sec bus.Security, logger *slog.Logger) error {
	if len(spec.Produces) == 0 {
		return nil
	}
	if len(spec.Kafka.Brokers) == 0 {
		return fmt.Errorf("%s: kafka: no brokers", spec.Name)
	}
	topics := make([]bus.TopicSpec, len(spec.Produces))
	for i, t := range spec.Produces {
		topics[i] = bus.TopicSpec{Name: spec.Kafka.Topic(t), Partitions: spec.Kafka.Partitions, ReplicationFactor: spec.Kafka.ReplicationFactor}
	}
	topicCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := bus.EnsureTopicsWith(topicCtx, spec.Kafka.Brokers, sec, topics...); err != nil {
		logger.WarnContext(ctx, "own topics not ensured", "topics", spec.Produces, "error", err)
	}
	return nil
}

// listenerTLS is the TLS of the gRPC, ops and web listeners: all nil, or
// all serving the configured pair, re-read when its files change.
type listenerTLS struct{ grpc, ops, web *tls.Config }

func serverTLS(c config.Common) (listenerTLS, error) {
	if c.TLSCertFile == "" && c.TLSKeyFile == "" {
		return listenerTLS{}, nil
	}
	r, err := tlsfiles.NewReloader(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return listenerTLS{}, err
	}
	return listenerTLS{grpc: r.ServerConfig("h2"), ops: r.ServerConfig("http/1.1"), web: r.ServerConfig("h2", "http/1.1")}, nil
}

func grpcLimits(l config.GRPCLimits) grpcserver.Limits {
	return grpcserver.Limits{
		MaxConcurrentStreams: l.MaxConcurrentStreams, MaxRecvMsgBytes: l.MaxRecvMsgBytes, MaxSendMsgBytes: l.MaxSendMsgBytes,
		KeepaliveMinTime: l.KeepaliveMinTime, KeepaliveTime: l.KeepaliveTime, KeepaliveTimeout: l.KeepaliveTimeout,
		MaxConnectionIdle: l.MaxConnectionIdle, MaxConnectionAge: l.MaxConnectionAge, MaxConnectionAgeGrace: l.MaxConnectionAgeGrace,
	}
}
