package webhook

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// testNow is the fixed clock of the verifier tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestSecret(t testing.TB) string {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// referenceSign signs with the Standard Webhooks reference library.
func referenceSign(t testing.TB, secret, id string, ts time.Time, body []byte) string {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	sig, err := wh.Sign(id, ts, body)
	require.NoError(t, err)
	return sig
}

func newSignedRequest(t testing.TB, target, id string, ts time.Time, body []byte, signature string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	r.Header.Set(HeaderID, id)
	r.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	r.Header.Set(HeaderSignature, signature)
	return r
}

func TestVerifier(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		secret   string
		verifier *Verifier
		id       string
		body     []byte
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		secret := newTestSecret(t)
		v, err := NewVerifierWithConfig(VerifierConfig{
			Secrets: []string{secret},
			Now:     func() time.Time { return testNow },
		})
		require.NoError(t, err)
		return &testBundle{secret: secret, verifier: v, id: "msg_2h7Kq", body: []byte(`{"order_id":42}`)}
	}

	t.Run("ReferenceSignatureVerifies", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sig := referenceSign(t, b.secret, b.id, testNow, b.body)
		got, err := b.verifier.Verify(newSignedRequest(t, "/", b.id, testNow, b.body, sig))
		require.NoError(t, err)
		require.Equal(t, b.body, got)
	})

	t.Run("OwnSignerVerifies", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		signer, err := NewSigner(b.secret)
		require.NoError(t, err)
		sig := signer.Sign(b.id, testNow.Unix(), b.body)
		require.NoError(t, b.verifier.VerifyPayload(b.id, strconv.FormatInt(testNow.Unix(), 10), b.body, sig))
	})

	t.Run("Tampered", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sig := referenceSign(t, b.secret, b.id, testNow, b.body)
		ts := strconv.FormatInt(testNow.Unix(), 10)
		for name, tc := range map[string]struct {
			id, ts string
			body   []byte
			sig    string
		}{
			"Body":          {b.id, ts, []byte(`{"order_id":43}`), sig},
			"EmptyBody":     {b.id, ts, nil, sig},
			"ID":            {"msg_other", ts, b.body, sig},
			"Timestamp":     {b.id, strconv.FormatInt(testNow.Unix()-1, 10), b.body, sig},
			"Signature":     {b.id, ts, b.body, "v1," + strings.Repeat("A", 43) + "="},
			"OtherVersion":  {b.id, ts, b.body, "v1a," + strings.TrimPrefix(sig, "v1,")},
			"NoVersion":     {b.id, ts, b.body, strings.TrimPrefix(sig, "v1,")},
			"TruncatedSig":  {b.id, ts, b.body, sig[:len(sig)-2]},
			"OtherSecret":   {b.id, ts, b.body, referenceSign(t, newTestSecret(t), b.id, testNow, b.body)},
			"SignatureOnly": {b.id, ts, b.body, "v1,"},
		} {
			err := b.verifier.VerifyPayload(tc.id, tc.ts, tc.body, tc.sig)
			require.ErrorIs(t, err, ErrInvalidSignature, name)
		}
	})

	t.Run("IgnoresOtherVersionsAndExtraEntries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sig := referenceSign(t, b.secret, b.id, testNow, b.body)
		header := "v1a,c29tZXRoaW5n v2,xyz garbage " + sig + " v1,bm9wZQ=="
		_, err := b.verifier.Verify(newSignedRequest(t, "/", b.id, testNow, b.body, header))
		require.NoError(t, err)
	})

	t.Run("MissingHeaders", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sig := referenceSign(t, b.secret, b.id, testNow, b.body)
		for _, h := range []string{HeaderID, HeaderTimestamp, HeaderSignature} {
			r := newSignedRequest(t, "/", b.id, testNow, b.body, sig)
			r.Header.Del(h)
			_, err := b.verifier.Verify(r)
			require.ErrorIs(t, err, ErrMissingHeaders, h)
		}
		require.ErrorIs(t, b.verifier.VerifyPayload("", "1", b.body, sig), ErrMissingHeaders)
	})

	t.Run("MalformedTimestamp", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, ts := range []string{"soon", "1.5", "0x10", "99999999999999999999"} {
			err := b.verifier.VerifyPayload(b.id, ts, b.body, "v1,AAAA")
			require.ErrorIs(t, err, ErrInvalidTimestamp, ts)
		}
	})

	t.Run("TimestampTolerance", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, tc := range []struct {
			offset time.Duration
			want   error
		}{
			{-VerifierToleranceDefault, nil},
			{VerifierToleranceDefault, nil},
			{-VerifierToleranceDefault - time.Second, ErrTimestampTooOld},
			{-24 * time.Hour, ErrTimestampTooOld},
			{VerifierToleranceDefault + time.Second, ErrTimestampTooNew},
			{24 * time.Hour, ErrTimestampTooNew},
		} {
			ts := testNow.Add(tc.offset)
			sig := referenceSign(t, b.secret, b.id, ts, b.body)
			_, err := b.verifier.Verify(newSignedRequest(t, "/", b.id, ts, b.body, sig))
			if tc.want == nil {
				require.NoError(t, err, tc.offset)
			} else {
				require.ErrorIs(t, err, tc.want, tc.offset)
			}
		}
	})

	t.Run("CustomTolerance", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		v, err := NewVerifierWithConfig(VerifierConfig{
			Secrets:   []string{b.secret},
			Tolerance: 10 * time.Second,
			Now:       func() time.Time { return testNow },
		})
		require.NoError(t, err)
		ts := testNow.Add(-11 * time.Second)
		sig := referenceSign(t, b.secret, b.id, ts, b.body)
		_, err = v.Verify(newSignedRequest(t, "/", b.id, ts, b.body, sig))
		require.ErrorIs(t, err, ErrTimestampTooOld)
	})

	t.Run("ForgedStaleMessageIsInvalidNotTooOld", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ts := testNow.Add(-time.Hour)
		sig := referenceSign(t, newTestSecret(t), b.id, ts, b.body)
		_, err := b.verifier.Verify(newSignedRequest(t, "/", b.id, ts, b.body, sig))
		require.ErrorIs(t, err, ErrInvalidSignature)
	})

	t.Run("Rotation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		oldSecret, newSecret := b.secret, newTestSecret(t)
		both, err := NewVerifierWithConfig(VerifierConfig{
			Secrets: []string{oldSecret, newSecret},
			Now:     func() time.Time { return testNow },
		})
		require.NoError(t, err)
		ts := strconv.FormatInt(testNow.Unix(), 10)

		// A verifier knowing both accepts a signature by either.
		for _, s := range []string{oldSecret, newSecret} {
			sig := referenceSign(t, s, b.id, testNow, b.body)
			require.NoError(t, both.VerifyPayload(b.id, ts, b.body, sig))
		}

		// A message signed with both is accepted by a verifier knowing either.
		signer, err := NewSigner(newSecret, oldSecret)
		require.NoError(t, err)
		sig := signer.Sign(b.id, testNow.Unix(), b.body)
		require.Len(t, strings.Fields(sig), 2)
		for _, s := range []string{oldSecret, newSecret} {
			v, err := NewVerifierWithConfig(VerifierConfig{Secrets: []string{s}, Now: func() time.Time { return testNow }})
			require.NoError(t, err)
			require.NoError(t, v.VerifyPayload(b.id, ts, b.body, sig))
		}

		// A verifier knowing neither rejects it.
		other, err := NewVerifier(newTestSecret(t))
		require.NoError(t, err)
		require.ErrorIs(t, other.VerifyPayload(b.id, ts, b.body, sig), ErrInvalidSignature)
	})

	t.Run("BodyTooLarge", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		v, err := NewVerifierWithConfig(VerifierConfig{
			Secrets:      []string{b.secret},
			MaxBodyBytes: 16,
			Now:          func() time.Time { return testNow },
		})
		require.NoError(t, err)

		fits := []byte("0123456789abcdef")
		sig := referenceSign(t, b.secret, b.id, testNow, fits)
		_, err = v.Verify(newSignedRequest(t, "/", b.id, testNow, fits, sig))
		require.NoError(t, err)

		big := []byte("0123456789abcdefg")
		sig = referenceSign(t, b.secret, b.id, testNow, big)
		_, err = v.Verify(newSignedRequest(t, "/", b.id, testNow, big, sig))
		require.ErrorIs(t, err, ErrBodyTooLarge)

		// Without a Content-Length, the limit holds while reading.
		r := newSignedRequest(t, "/", b.id, testNow, big, sig)
		r.ContentLength = -1
		r.Body = io.NopCloser(bytes.NewReader(big))
		_, err = v.Verify(r)
		require.ErrorIs(t, err, ErrBodyTooLarge)
	})

	t.Run("DefaultBodyLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		big := bytes.Repeat([]byte("x"), int(VerifierMaxBodyBytesDefault)+1)
		sig := referenceSign(t, b.secret, b.id, testNow, big)
		_, err := b.verifier.Verify(newSignedRequest(t, "/", b.id, testNow, big, sig))
		require.ErrorIs(t, err, ErrBodyTooLarge)
	})

	t.Run("Config", func(t *testing.T) {
		t.Parallel()
		_, err := NewVerifier()
		require.ErrorContains(t, err, "Secrets")

		_, err = NewVerifierWithConfig(VerifierConfig{Secrets: []string{newTestSecret(t)}, Tolerance: -time.Second})
		require.ErrorContains(t, err, "Tolerance")

		_, err = NewVerifierWithConfig(VerifierConfig{Secrets: []string{newTestSecret(t)}, MaxBodyBytes: -1})
		require.ErrorContains(t, err, "MaxBodyBytes")

		// An invalid secret is named by position, never by value.
		bad := "whsec_c2hvcnQ="
		_, err = NewVerifier(newTestSecret(t), bad)
		require.ErrorIs(t, err, ErrInvalidSecret)
		require.ErrorContains(t, err, "Secrets[1]")
		require.NotContains(t, err.Error(), "c2hvcnQ")

		def := VerifierConfig{}.WithDefaults()
		require.Equal(t, VerifierToleranceDefault, def.Tolerance)
		require.Equal(t, VerifierMaxBodyBytesDefault, def.MaxBodyBytes)
		require.NotNil(t, def.Now)
	})

	t.Run("ErrorsNeverContainSecret", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		raw := strings.TrimPrefix(b.secret, SecretPrefix)
		ts := strconv.FormatInt(testNow.Unix(), 10)
		for _, err := range []error{
			b.verifier.VerifyPayload(b.id, ts, b.body, "v1,"+raw),
			b.verifier.VerifyPayload("", ts, b.body, "x"),
			b.verifier.VerifyPayload(b.id, "x", b.body, "x"),
		} {
			require.Error(t, err)
			require.NotContains(t, err.Error(), raw)
			require.False(t, errors.Is(err, ErrTimestampTooOld))
		}
	})
}
