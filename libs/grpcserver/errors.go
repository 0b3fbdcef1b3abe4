package grpcserver

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// InvalidArgument is the status for bad input in one field: the field in the
// message and as a BadRequest detail, as the validation interceptor answers.
func InvalidArgument(field, reason string) error {
	st := status.New(codes.InvalidArgument, field+": "+reason)
	if detailed, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: field, Description: reason},
	}}); err == nil {
		st = detailed
	}
	return st.Err()
}
