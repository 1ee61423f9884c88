package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// SecretPrefix starts every Standard Webhooks signing secret.
const SecretPrefix = "whsec_"

// Header names defined by Standard Webhooks.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// minSecretBytes is the smallest decoded key accepted. Standard Webhooks asks
// for 24 to 64 bytes; 16 is tolerated for secrets issued by older tools.
const minSecretBytes = 16

// ErrInvalidSecret is returned for a secret that is not "whsec_" followed by
// base64 of at least 16 bytes. The secret itself is never part of the error.
var ErrInvalidSecret = errors.New("webhook secret must be whsec_ followed by base64 of 16 to 64 bytes")

// Secret is a decoded Standard Webhooks signing key. Its String method never
// reveals the key.
type Secret struct {
	key []byte
	// macs pools *macState for this key so that signing on the hot path
	// allocates nothing. Nil for the zero Secret, which then signs slowly.
	macs *sync.Pool
}

// macState is a reusable HMAC and scratch buffer for one key.
type macState struct {
	mac hash.Hash
	buf []byte
}

// ParseSecret decodes a "whsec_<base64>" secret.
func ParseSecret(s string) (Secret, error) {
	raw, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	if !ok {
		return Secret{}, ErrInvalidSecret
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		// Some issuers strip the padding.
		key, err = base64.RawStdEncoding.DecodeString(raw)
	}
	if err != nil || len(key) < minSecretBytes || len(key) > 64 {
		return Secret{}, ErrInvalidSecret
	}
	return newSecret(key), nil
}

func newSecret(key []byte) Secret {
	return Secret{key: key, macs: &sync.Pool{New: func() any {
		return &macState{mac: hmac.New(sha256.New, key), buf: make([]byte, 0, 128)}
	}}}
}

// String hides the key so that a Secret can never leak through a log line.
func (Secret) String() string { return "whsec_[redacted]" }

// GoString hides the key from %#v too.
func (Secret) GoString() string { return "webhook.Secret{[redacted]}" }

// sign appends base64(HMAC-SHA256(key, id "." timestamp "." body)) to dst.
// It does not allocate once dst has room and the pool is warm.
func (s Secret) sign(dst []byte, id string, timestamp int64, body []byte) []byte {
	var st *macState
	if s.macs != nil {
		st = s.macs.Get().(*macState)
		st.mac.Reset()
	} else {
		st = &macState{mac: hmac.New(sha256.New, s.key)}
	}
	buf := append(st.buf[:0], id...)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, timestamp, 10)
	buf = append(buf, '.')
	st.mac.Write(buf)
	st.mac.Write(body)
	buf = st.mac.Sum(buf[:0])
	dst = base64.StdEncoding.AppendEncode(dst, buf)
	st.buf = buf
	if s.macs != nil {
		s.macs.Put(st)
	}
	return dst
}

// Signer signs requests with one or more secrets, newest first. Signing with
// every active secret lets a receiver roll its key with no gap: it accepts
// any signature made with a secret it knows.
type Signer struct {
	secrets []Secret
}

// NewSigner parses the given "whsec_" secrets. It returns an error naming the
// position of the first invalid secret (never its value).
func NewSigner(secrets ...string) (*Signer, error) {
	if len(secrets) == 0 {
		return nil, errors.New("new signer: no secret")
	}
	s := &Signer{secrets: make([]Secret, 0, len(secrets))}
	for i, raw := range secrets {
		sec, err := ParseSecret(raw)
		if err != nil {
			return nil, &ConfigError{Field: "secrets[" + strconv.Itoa(i) + "]", Err: err}
		}
		s.secrets = append(s.secrets, sec)
	}
	return s, nil
}

// AppendSignature appends the webhook-signature header value for a message:
// "v1,<sig>" for each secret, separated by spaces.
func (s *Signer) AppendSignature(dst []byte, id string, timestamp int64, body []byte) []byte {
	for i, sec := range s.secrets {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, "v1,"...)
		dst = sec.sign(dst, id, timestamp, body)
	}
	return dst
}

// SignatureLen is the length of one "v1,<base64>" signature.
const SignatureLen = len("v1,") + 44

// Sign returns the webhook-signature header value for a message.
func (s *Signer) Sign(id string, timestamp int64, body []byte) string {
	return string(s.AppendSignature(make([]byte, 0, (SignatureLen+1)*len(s.secrets)), id, timestamp, body))
}

// String hides the secrets.
func (s *Signer) String() string {
	return "webhook.Signer{" + strconv.Itoa(len(s.secrets)) + " secrets}"
}
