package lock

import (
	"errors"
	"fmt"
)

// Error kinds. Every error the Service returns for a caller mistake wraps
// one of these, so front ends map them to a status with errors.Is:
// ErrNotFound 404, ErrConflict 409, ErrInvalidTransition 409 (or 422),
// ErrForbidden 403, ErrValidation 400/422.
var (
	ErrNotFound          = errors.New("not found")
	ErrConflict          = errors.New("conflict")
	ErrInvalidTransition = errors.New("invalid transition")
	ErrForbidden         = errors.New("forbidden")
	ErrValidation        = errors.New("validation failed")
)

// Error carries the details of a refused call. Kind is one of the sentinel
// errors above; Field names the offending input field for ErrValidation;
// ExistingID points to the object that caused an ErrConflict (for example
// the open unlock request a second request collided with).
type Error struct {
	Kind       error
	Message    string
	Field      string
	ExistingID int64
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%v: %s: %s", e.Kind, e.Field, e.Message)
	}
	return fmt.Sprintf("%v: %s", e.Kind, e.Message)
}

// Unwrap makes errors.Is(err, ErrConflict) and friends work.
func (e *Error) Unwrap() error { return e.Kind }

func notFound(format string, a ...any) error {
	return &Error{Kind: ErrNotFound, Message: fmt.Sprintf(format, a...)}
}

func conflict(existing int64, format string, a ...any) error {
	return &Error{Kind: ErrConflict, Message: fmt.Sprintf(format, a...), ExistingID: existing}
}

func forbidden(format string, a ...any) error {
	return &Error{Kind: ErrForbidden, Message: fmt.Sprintf(format, a...)}
}

func invalid(field, format string, a ...any) error {
	return &Error{Kind: ErrValidation, Field: field, Message: fmt.Sprintf(format, a...)}
}

// ErrorDetails returns the *Error inside err, or nil.
func ErrorDetails(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
