package maxine

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"connectrpc.com/connect"
)

// FailureCodes are the status codes that count as a failure of the
// instance: it could not serve (UNAVAILABLE: refused, reset, shutting
// down; DEADLINE_EXCEEDED; INTERNAL; UNKNOWN). Any other answer, an
// application error included, shows the instance serving. The TypeScript
// and Python SDKs use the same set.
var FailureCodes = []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown}

// Outcome classifies a finished call's error for Watcher.Report: success
// (nil, or an answer outside FailureCodes) or failure; report is false for
// a call the caller cancelled, which says nothing about the instance. It
// reads gRPC statuses (grpc-go) and Connect errors (connect-go).
func Outcome(err error) (success, report bool) {
	if err == nil {
		return true, true
	}
	code := codes.Unknown
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		code = codes.Code(ce.Code())
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		if s, ok := status.FromError(err); ok {
			code = s.Code()
		}
	}
	if code == codes.Canceled {
		return false, false
	}
	for _, c := range FailureCodes {
		if c == code {
			return false, true
		}
	}
	return true, true
}

// ReportError is Report with the outcome Outcome reads from a call's error
// (nothing for a cancelled call).
func (w *Watcher) ReportError(service, instanceID string, err error) {
	if success, report := Outcome(err); report {
		w.Report(service, instanceID, success)
	}
}

// UnaryOutcomeInterceptor is a grpc-go client interceptor for a connection
// to ONE instance (dialled at its host:port): every unary call's error goes
// to ReportError, so that the watcher's Pick stops choosing the instance
// when it fails (docs/client-ejection.md).
//
//	conn, err := grpc.NewClient(net.JoinHostPort(inst.GetHost(), port),
//		grpc.WithUnaryInterceptor(w.UnaryOutcomeInterceptor(inst.GetService(), inst.GetInstanceId())), ...)
func (w *Watcher) UnaryOutcomeInterceptor(service, instanceID string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		w.ReportError(service, instanceID, err)
		return err
	}
}
