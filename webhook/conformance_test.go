package webhook

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

// TestSignerConformance checks Herald's signer against the Standard Webhooks
// reference implementation, both ways, on awkward inputs.
func TestSignerConformance(t *testing.T) {
	t.Parallel()
	secrets := []string{
		testSecret('a'),
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // the spec's example secret (24 bytes)
		SecretPrefix + "c2VjcmV0LXdpdGgtb25lLXBhZGRpbmctYnl0ZS0hIQ==",
	}
	bodies := [][]byte{
		nil,
		[]byte(`{}`),
		[]byte(`{"test": 2432232314}`),
		[]byte("{\"unicode\":\"é ü 日本\",\"nl\":\"a\\nb\"}\n"),
		[]byte(strings.Repeat(`{"k":"v"},`, 10_000)),
	}
	ids := []string{"msg_p5jXN8AQM9LWM0D4loKWxJek", "1", "01J5ZX4Q2F9Y6V7W8X9Y0Z1A2B"}
	now := time.Now()

	for si, secret := range secrets {
		signer, err := NewSigner(secret)
		require.NoError(t, err)
		ref, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		for _, id := range ids {
			for bi, body := range bodies {
				name := "secret" + strconv.Itoa(si) + "/" + id + "/body" + strconv.Itoa(bi)
				// Herald signs, the reference verifies.
				h := http.Header{}
				h.Set(HeaderID, id)
				h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
				h.Set(HeaderSignature, signer.Sign(id, now.Unix(), body))
				require.NoError(t, ref.Verify(body, h), name)

				// The reference signs the same bytes as Herald.
				want, err := ref.Sign(id, now, body)
				require.NoError(t, err)
				require.Equal(t, want, signer.Sign(id, now.Unix(), body), name)

				// A changed body, id or timestamp fails.
				require.Error(t, ref.Verify(append([]byte(" "), body...), h), name)
				h.Set(HeaderID, id+"x")
				require.Error(t, ref.Verify(body, h), name)
			}
		}
	}
}

func TestSigner_Rotation(t *testing.T) {
	t.Parallel()
	newer, older := testSecret('n'), testSecret('o')
	signer, err := NewSigner(newer, older)
	require.NoError(t, err)
	ts := time.Now().Unix()
	sig := signer.Sign("msg_1", ts, []byte(`{}`))
	parts := strings.Split(sig, " ")
	require.Len(t, parts, 2)
	require.Len(t, parts[0], SignatureLen)

	for i, secret := range []string{newer, older} {
		one, err := NewSigner(secret)
		require.NoError(t, err)
		require.Equal(t, one.Sign("msg_1", ts, []byte(`{}`)), parts[i], "signatures are newest first")
	}
}

func TestSigner_ZeroSecretAndConcurrency(t *testing.T) {
	t.Parallel()
	sec, err := ParseSecret(testSecret('z'))
	require.NoError(t, err)
	unpooled := Secret{key: sec.key}
	ts := time.Now().Unix()
	want := string(sec.sign(nil, "id", ts, []byte("body")))
	require.Equal(t, want, string(unpooled.sign(nil, "id", ts, []byte("body"))))

	done := make(chan string, 8)
	for range 8 {
		go func() {
			var got string
			for range 200 {
				got = string(sec.sign(nil, "id", ts, []byte("body")))
				if got != want {
					break
				}
			}
			done <- got
		}()
	}
	for range 8 {
		require.Equal(t, want, <-done)
	}
}

func TestSecret_NeverPrinted(t *testing.T) {
	t.Parallel()
	secret := testSecret('p')
	signer, err := NewSigner(secret)
	require.NoError(t, err)
	sec, err := ParseSecret(secret)
	require.NoError(t, err)
	require.NotContains(t, signer.String(), secret[len(SecretPrefix):])
	require.Equal(t, "whsec_[redacted]", sec.String())

	_, err = NewSigner(secret, "whsec_bm9wZQ==")
	require.ErrorContains(t, err, "secrets[1]: ")
	require.NotContains(t, err.Error(), "bm9wZQ")
}
