package webhook

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Neither user info nor query values, nor anything of a URL that does not
// parse, survive RedactURL.
func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ raw, want string }{
		{"https://example.com/hook", "https://example.com/hook"},
		{"https://example.com/hook?", "https://example.com/hook?"},
		{"https://user:s3cret@example.com/hook", "https://redacted@example.com/hook"},
		{"https://s3cret@example.com/hook", "https://redacted@example.com/hook"},
		{"https://example.com/hook?token=s3cret&x=s3cret", "https://example.com/hook?token=redacted&x=redacted"},
		{"https://example.com/hook?s3cret", "https://example.com/hook?redacted"},
		{"https://example.com/hook?a=1;b=s3cret", "https://example.com/hook?a=redacted"},
		{"https://example.com/hook#access_token=s3cret", "https://example.com/hook#redacted"},
		{"mailto:s3cret@example.com", "mailto:redacted"},
		// A forgotten host makes the password the port.
		{"https://user:s3cret/hook", "<unparseable URL: invalid port after host>"},
		{"https://user:s3cret@exa mple.com/hook", "<unparseable URL: invalid character in host name>"},
		{"https://example.com/hook?token=s3cret\n", "<unparseable URL: net/url: invalid control character in URL>"},
		{"https://user:s3cret@example.com/%zz", "<unparseable URL: invalid URL escape>"},
		{"::s3cret", "<unparseable URL: missing protocol scheme>"},
		{"https://[s3cret/hook", "<unparseable URL: missing ']' in host>"},
	} {
		got := RedactURL(tc.raw)
		require.Equal(t, tc.want, got, tc.raw)
		require.NotContains(t, got, "s3cret", tc.raw)
	}
}
