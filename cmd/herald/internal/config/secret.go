package config

import (
	"fmt"
	"io"
)

// redacted is what a Secret prints as.
const redacted = "[redacted]"

// Secret is a string that never prints itself: fmt verbs (%v, %+v, %#v,
// %s, %q, %x, ...), String, GoString and text marshalling (JSON, YAML,
// zerolog) all give "[redacted]". Call Value for the real string.
type Secret string

// Value returns the secret itself. Keep the result out of logs and errors.
func (s Secret) Value() string { return string(s) }

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return `config.Secret("` + redacted + `")` }

// Format implements fmt.Formatter, so that no verb prints the value.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = io.WriteString(f, redacted)
}

// MarshalText implements encoding.TextMarshaler, so that encoders print
// "[redacted]" too.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
