package webhook

import (
	"cmp"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Verification errors. Each is matched with errors.Is; none carries a secret.
var (
	// ErrMissingHeaders means webhook-id, webhook-timestamp or
	// webhook-signature is absent or empty.
	ErrMissingHeaders = errors.New("missing webhook-id, webhook-timestamp or webhook-signature header")
	// ErrInvalidTimestamp means webhook-timestamp is not a decimal Unix time.
	ErrInvalidTimestamp = errors.New("webhook-timestamp is not a Unix time in seconds")
	// ErrInvalidSignature means no "v1," signature in webhook-signature
	// matches the message under any known secret.
	ErrInvalidSignature = errors.New("no matching webhook signature")
	// ErrTimestampTooOld means an authentic message was signed more than the
	// tolerance ago: a replay, or a sender clock running behind.
	ErrTimestampTooOld = errors.New("webhook timestamp too old")
	// ErrTimestampTooNew means an authentic message is dated more than the
	// tolerance in the future: a sender clock running ahead.
	ErrTimestampTooNew = errors.New("webhook timestamp too new")
	// ErrBodyTooLarge means the request body exceeds the verifier's limit.
	ErrBodyTooLarge = errors.New("webhook body too large")
)

const (
	// VerifierToleranceDefault is how far a timestamp may be from the
	// receiver's clock, either way, when VerifierConfig.Tolerance is unset.
	VerifierToleranceDefault = 5 * time.Minute
	// VerifierMaxBodyBytesDefault is the body size limit when
	// VerifierConfig.MaxBodyBytes is unset.
	VerifierMaxBodyBytesDefault int64 = 1 << 20
)

// VerifierConfig configures a Verifier. The zero value of every field but
// Secrets selects its default.
type VerifierConfig struct {
	// Secrets are the "whsec_" secrets a signature may be made with. During a
	// rotation list both the old and the new secret: a message signed with
	// either is accepted. Required.
	Secrets []string

	// Tolerance is how far webhook-timestamp may be from Now, in the past or
	// the future. It bounds replays of captured requests. Defaults to
	// VerifierToleranceDefault (5 minutes).
	Tolerance time.Duration

	// MaxBodyBytes is the largest body Verify reads. Defaults to
	// VerifierMaxBodyBytesDefault (1 MiB).
	MaxBodyBytes int64

	// Now returns the current time; tests inject a fixed clock. Defaults to
	// time.Now.
	Now func() time.Time
}

// WithDefaults returns a copy of c with every unset field at its default.
func (c VerifierConfig) WithDefaults() VerifierConfig {
	c.Tolerance = cmp.Or(c.Tolerance, VerifierToleranceDefault)
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, VerifierMaxBodyBytesDefault)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c VerifierConfig) validate() error {
	if len(c.Secrets) == 0 {
		return errors.New("verifier config: Secrets: at least one secret is required")
	}
	if c.Tolerance < 0 {
		return fmt.Errorf("verifier config: Tolerance: must not be negative, got %s", c.Tolerance)
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("verifier config: MaxBodyBytes: must not be negative, got %d", c.MaxBodyBytes)
	}
	return nil
}

// Verifier checks Standard Webhooks signatures on received messages. It is
// safe for concurrent use.
type Verifier struct {
	secrets      []Secret
	tolerance    time.Duration
	maxBodyBytes int64
	now          func() time.Time
}

// NewVerifier returns a Verifier accepting signatures made with any of the
// given "whsec_" secrets, with the default tolerance and body limit. An
// invalid secret is reported by position, never by value.
func NewVerifier(secrets ...string) (*Verifier, error) {
	return NewVerifierWithConfig(VerifierConfig{Secrets: secrets})
}

// NewVerifierWithConfig returns a Verifier configured by cfg.
func NewVerifierWithConfig(cfg VerifierConfig) (*Verifier, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	v := &Verifier{
		secrets:      make([]Secret, 0, len(cfg.Secrets)),
		tolerance:    cfg.Tolerance,
		maxBodyBytes: cfg.MaxBodyBytes,
		now:          cfg.Now,
	}
	for i, raw := range cfg.Secrets {
		sec, err := ParseSecret(raw)
		if err != nil {
			return nil, fmt.Errorf("verifier config: Secrets[%d]: %w", i, err)
		}
		v.secrets = append(v.secrets, sec)
	}
	return v, nil
}

// Verify reads the request body, at most the configured limit, and checks the
// webhook-id, webhook-timestamp and webhook-signature headers against it. It
// returns the body only when the message is authentic and timely.
//
// The signature is checked before the timestamp, so ErrTimestampTooOld and
// ErrTimestampTooNew describe authentic messages (typically clock skew or a
// replay), never forgeries.
func (v *Verifier) Verify(r *http.Request) ([]byte, error) {
	id, ts, sig := r.Header.Get(HeaderID), r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature)
	if id == "" || ts == "" || sig == "" {
		return nil, ErrMissingHeaders
	}
	body, err := readBody(r, v.maxBodyBytes)
	if err != nil {
		return nil, err
	}
	if err := v.VerifyPayload(id, ts, body, sig); err != nil {
		return nil, err
	}
	return body, nil
}

// VerifyPayload checks a message received by other means than net/http. Its
// arguments are the three header values and the raw body, exactly as
// received.
func (v *Verifier) VerifyPayload(id, timestamp string, body []byte, signature string) error {
	if id == "" || timestamp == "" || signature == "" {
		return ErrMissingHeaders
	}
	unix, err := parseTimestamp(timestamp)
	if err != nil {
		return err
	}
	if !v.matches(id, unix, body, signature) {
		return ErrInvalidSignature
	}
	now := v.now()
	sent := time.Unix(unix, 0)
	switch {
	case now.Sub(sent) > v.tolerance:
		return ErrTimestampTooOld
	case sent.Sub(now) > v.tolerance:
		return ErrTimestampTooNew
	}
	return nil
}

// matches reports whether any "v1," entry of the signature header equals the
// signature of the message under any known secret. Every comparison is
// constant-time; entries of other versions are ignored.
func (v *Verifier) matches(id string, unix int64, body []byte, header string) bool {
	expected := make([][]byte, 0, len(v.secrets))
	for _, sec := range v.secrets {
		expected = append(expected, sec.sign(nil, id, unix, body))
	}
	ok := false
	for entry := range strings.FieldsSeq(header) {
		version, sig, found := strings.Cut(entry, ",")
		if !found || version != "v1" {
			continue
		}
		for _, want := range expected {
			// No early exit: the time taken does not depend on which
			// secret or entry matched.
			if hmac.Equal([]byte(sig), want) {
				ok = true
			}
		}
	}
	return ok
}

// parseTimestamp parses a webhook-timestamp value: Unix time in seconds.
func parseTimestamp(s string) (int64, error) {
	unix, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, ErrInvalidTimestamp
	}
	return unix, nil
}

// readBody reads r's body, failing with ErrBodyTooLarge past limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, ErrBodyTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read webhook body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, ErrBodyTooLarge
	}
	return body, nil
}
