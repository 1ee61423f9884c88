package webhook

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func FuzzVerifySignatureHeader(f *testing.F) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		body   = `{"test": 2432232314}`
	)
	now := time.Unix(1614265330, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	v, err := NewVerifierWithConfig(VerifierConfig{Secrets: []string{secret}, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	signer, err := NewSigner(secret)
	if err != nil {
		f.Fatal(err)
	}
	valid := signer.Sign(id, now.Unix(), []byte(body))

	for _, seed := range []string{
		valid,
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", // the spec's example signature
		valid + " " + valid,
		"v1a,abc " + valid,
		"v2,abc v1,abc",
		"v1," + strings.TrimPrefix(valid, "v1,")[:10],
		strings.TrimPrefix(valid, "v1,"),
		"v1,",
		",",
		"v1",
		"",
		" ",
		"\t" + valid + "\n",
		"v1,,," + valid,
		"V1," + strings.TrimPrefix(valid, "v1,"),
		strings.Repeat("v1,AAAA ", 64),
		"v1,\x00\xff",
		"v1,ÿÿÿÿ",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, header string) {
		start := time.Now()
		err := v.VerifyPayload(id, ts, []byte(body), header)
		checkTime(t, start)
		switch {
		case err == nil:
			if !containsField(header, valid) {
				t.Fatalf("accepted %q, which does not carry the valid signature", header)
			}
		case errors.Is(err, ErrInvalidSignature), errors.Is(err, ErrMissingHeaders) && header == "":
			if containsField(header, valid) {
				t.Fatalf("rejected %q, which carries the valid signature: %v", header, err)
			}
		default:
			t.Fatalf("unexpected error for %q: %v", header, err)
		}
		// A valid entry added to any header is always found.
		if err := v.VerifyPayload(id, ts, []byte(body), header+" "+valid); err != nil {
			t.Fatalf("%q plus a valid signature rejected: %v", header, err)
		}
	})
}

func containsField(header, want string) bool {
	for field := range strings.FieldsSeq(header) {
		if field == want {
			return true
		}
	}
	return false
}
