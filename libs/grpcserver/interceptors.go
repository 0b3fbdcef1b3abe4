package grpcserver

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"buf.build/go/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// recoveryHandler logs a handler's panic with its stack and answers
// codes.Internal without the panic text, which may hold internals.
func recoveryHandler(logger *slog.Logger) recovery.Option {
	return recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		logger.ErrorContext(ctx, "panic in gRPC handler",
			slog.String("grpc.method", method),
			slog.Any("panic", p),
			slog.String("stack", string(debug.Stack())),
		)
		return status.Error(codes.Internal, "internal error")
	})
}

func unaryRecovery(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return recovery.UnaryServerInterceptor(recoveryHandler(logger))
}

func streamRecovery(logger *slog.Logger) grpc.StreamServerInterceptor {
	return recovery.StreamServerInterceptor(recoveryHandler(logger))
}

// healthMethodPrefix marks probe calls, which are too frequent to log.
var healthMethodPrefix = "/" + healthpb.Health_ServiceDesc.ServiceName + "/"

func unaryLogging(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logCall(ctx, logger, info.FullMethod, start, err)
		return resp, err
	}
}

func streamLogging(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logCall(ss.Context(), logger, info.FullMethod, start, err)
		return err
	}
}

func logCall(ctx context.Context, logger *slog.Logger, method string, start time.Time, err error) {
	if strings.HasPrefix(method, healthMethodPrefix) {
		return
	}
	st := status.Convert(err)
	level := levelFor(st.Code())
	if !logger.Enabled(ctx, level) {
		return // skip building the attributes of a line nobody writes
	}
	attrs := []slog.Attr{
		slog.String("grpc.method", method),
		slog.String("grpc.code", st.Code().String()),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", st.Message()))
	}
	logger.LogAttrs(ctx, level, "gRPC call", attrs...)
}

// levelFor ranks outcomes: a success is DEBUG (at INFO one line per call
// would be most of the log at load; the metrics count calls), the client's
// mistakes are routine, ours are errors.
func levelFor(code codes.Code) slog.Level {
	switch code {
	case codes.OK:
		return slog.LevelDebug
	case codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists,
		codes.FailedPrecondition, codes.Unauthenticated, codes.PermissionDenied, codes.OutOfRange:
		return slog.LevelInfo
	case codes.Unknown, codes.Internal, codes.DataLoss, codes.Unimplemented:
		return slog.LevelError
	default:
		return slog.LevelWarn
	}
}

func unaryValidation(validator protovalidate.Validator) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := validate(validator, req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func streamValidation(validator protovalidate.Validator) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &validatingStream{ServerStream: ss, validator: validator})
	}
}

// validatingStream checks each message the client sends as it is received.
type validatingStream struct {
	grpc.ServerStream
	validator protovalidate.Validator
}

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return validate(s.validator, m)
}

// validate returns nil or a codes.InvalidArgument status whose message
// names each bad field ("customer_id: value is required") and whose details
// carry them as a BadRequest, for clients that map errors to form fields.
func validate(validator protovalidate.Validator, m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return nil // not protobuf (a custom codec): nothing to check
	}
	err := validator.Validate(msg)
	if err == nil {
		return nil
	}
	var invalid *protovalidate.ValidationError
	if !errors.As(err, &invalid) {
		// A rule that does not compile is our bug, not the client's.
		return status.Errorf(codes.Internal, "validate %s: %v", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	texts := make([]string, len(invalid.Violations))
	badRequest := &errdetails.BadRequest{}
	for i, v := range invalid.Violations {
		texts[i] = v.String()
		badRequest.FieldViolations = append(badRequest.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       protovalidate.FieldPathString(v.Proto.GetField()),
			Description: v.Proto.GetMessage(),
			Reason:      v.Proto.GetRuleId(),
		})
	}
	st := status.New(codes.InvalidArgument, strings.Join(texts, "; "))
	if detailed, err := st.WithDetails(badRequest, invalid.ToProto()); err == nil {
		st = detailed
	}
	return st.Err()
}

// errDraining is the cause set on stream contexts when shutdown starts.
var errDraining = errors.New("server is shutting down")

// streamDrain ends a stream's context when shutdown starts: a graceful stop
// waits for every call, and a watch stream would otherwise hold it until
// the timeout. Its client sees codes.Unavailable and reconnects elsewhere.
func (s *Server) streamDrain(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	stop := context.AfterFunc(s.drain, func() { cancel(errDraining) })
	defer stop()

	err := handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	if err != nil && errors.Is(context.Cause(ctx), errDraining) &&
		(errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled) {
		return status.Error(codes.Unavailable, errDraining.Error())
	}
	return err
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }
