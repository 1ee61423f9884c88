package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

var errMalformedCron = errors.New("malformed cron spec")

// FieldError is one problem with one key. Its message reads
//
//	herald.yaml:12: endpoints[0].url: must be an absolute http or https URL (got "ftp://x")
//
// File and Line point at the key, or at its closest enclosing key when it is
// missing; Line is 0 when neither is in the file.
type FieldError struct {
	File string // file name given to Parse or Load, or "$DATABASE_URL"
	Line int    // 1-based; 0 if unknown
	// Field is the key's path, such as "retry.multiplier" or
	// "endpoints[1].url".
	Field string
	// Value is the offending value as written (after ${VAR} expansion), or
	// "" when there is none or it is a secret: a secret is never in an error.
	Value string
	// Err says what is wrong, such as "must be between 1s and 5m0s".
	Err error
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	if e.Value != "" {
		fmt.Fprintf(&b, " (got %q)", e.Value)
	}
	return b.String()
}

func (e *FieldError) Unwrap() error { return e.Err }

// Error lists every problem found in a configuration, in file order, one
// per line. Use errors.As to get it from Parse, Load or Validate.
type Error struct {
	Problems []*FieldError
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As look at every problem.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}
