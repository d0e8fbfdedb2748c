package maxine

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"
)

// ErrClosed is returned by calls on a Session, Watcher or Instance that
// was closed (or deregistered) before or during the call.
var ErrClosed = errors.New("maxine: closed")

// ErrSessionLost is wrapped by Session.Err when the session stopped for
// good without Close: its heartbeat stream failed with an error a retry
// cannot fix, or stayed down longer than WithMaxDowntime allows.
var ErrSessionLost = errors.New("maxine: session lost")

// ValidationError reports an argument that breaks a rule before anything
// is sent; Field names the argument and Rule the rule it breaks.
type ValidationError struct {
	// Field is the argument or field at fault, e.g. "instance.service".
	Field string
	// Rule says what the value must be, e.g. "must not be empty".
	Rule string
}

// Error formats the error as "maxine: <field>: <rule>".
func (e *ValidationError) Error() string {
	return fmt.Sprintf("maxine: %s: %s", e.Field, e.Rule)
}

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Rule: fmt.Sprintf(format, args...)}
}

// fatalCodes are errors a reconnect cannot fix.
func isFatal(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeUnimplemented, connect.CodeUnauthenticated, connect.CodePermissionDenied:
		var ce *connect.Error
		return errors.As(err, &ce)
	}
	return false
}
