package webhook

import (
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     string
		want    []Header
		wantErr string
	}{
		{name: "empty", raw: ""},
		{name: "spaces", raw: "  \n"},
		{name: "null", raw: "null"},
		{name: "empty object", raw: "{}"},
		{name: "one", raw: `{"x-tenant":"acme"}`, want: []Header{{"X-Tenant", "acme"}}},
		{name: "sorted and canonical", raw: `{"x-b":"2","X-A":"1","authorization":"Bearer t"}`,
			want: []Header{{"Authorization", "Bearer t"}, {"X-A", "1"}, {"X-B", "2"}}},
		{name: "empty value", raw: `{"X-Empty":""}`, want: []Header{{"X-Empty", ""}}},
		{name: "tab and utf-8 in value", raw: `{"X-V":"a\tb é"}`, want: []Header{{"X-V", "a\tb é"}}},
		{name: "array", raw: `["a"]`, wantErr: "headers: must be a JSON object of strings"},
		{name: "string", raw: `"a"`, wantErr: "headers: must be a JSON object of strings"},
		{name: "invalid json", raw: `{"a":`, wantErr: "headers: invalid JSON"},
		{name: "number value", raw: `{"X-Count":1}`, wantErr: `headers: "X-Count": value must be a string`},
		{name: "null value", raw: `{"X-N":null}`, wantErr: `headers: "X-N": value must be a string`},
		{name: "object value", raw: `{"X-O":{}}`, wantErr: `headers: "X-O": value must be a string`},
		{name: "CRLF injection", raw: `{"X-A":"1\r\nX-Injected: 2"}`, wantErr: `headers: "X-A" has an invalid value`},
		{name: "LF", raw: `{"X-A":"1\n"}`, wantErr: `headers: "X-A" has an invalid value`},
		{name: "NUL", raw: `{"X-A":"\u0000"}`, wantErr: `headers: "X-A" has an invalid value`},
		{name: "space in name", raw: `{"X A":"1"}`, wantErr: `headers: "X A" is not a valid header name`},
		{name: "colon in name", raw: `{"X-A:":"1"}`, wantErr: `headers: "X-A:" is not a valid header name`},
		{name: "empty name", raw: `{"":"1"}`, wantErr: `headers: "" is not a valid header name`},
		{name: "duplicate", raw: `{"x-a":"1","X-A":"2"}`, wantErr: `headers: "X-A" is given twice`},
		{name: "host", raw: `{"host":"evil"}`, wantErr: `headers: "Host" is reserved`},
		{name: "content-type", raw: `{"Content-Type":"text/plain"}`, wantErr: `headers: "Content-Type" is reserved`},
		{name: "content-length", raw: `{"content-length":"1"}`, wantErr: `headers: "Content-Length" is reserved`},
		{name: "transfer-encoding", raw: `{"Transfer-Encoding":"chunked"}`, wantErr: `headers: "Transfer-Encoding" is reserved`},
		{name: "connection", raw: `{"Connection":"close"}`, wantErr: `headers: "Connection" is reserved`},
		{name: "user-agent", raw: `{"User-Agent":"x"}`, wantErr: `headers: "User-Agent" is reserved`},
		{name: "webhook-id", raw: `{"webhook-id":"x"}`, wantErr: `headers: "Webhook-Id" is reserved`},
		{name: "webhook-timestamp", raw: `{"WEBHOOK-TIMESTAMP":"1"}`, wantErr: `headers: "Webhook-Timestamp" is reserved`},
		{name: "webhook-signature", raw: `{"webhook-signature":"v1,x"}`, wantErr: `headers: "Webhook-Signature" is reserved`},
		{name: "trailing data", raw: `{"a":"1"} {}`, wantErr: "headers: invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseHeaders([]byte(tt.raw))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func FuzzParseHeaders(f *testing.F) {
	for _, seed := range []string{
		"", "null", "{}", `{"x-tenant":"acme"}`, `{"a":"1","B":"2"}`, `{"X-A":"1\r\nX-B: 2"}`,
		`{"host":"x"}`, `{"webhook-signature":"v1,x"}`, `{"a":1}`, `{"a":null}`, `[]`, `{"a":"\u00e9\t"}`,
		`{"x-a":"1","X-A":"2"}`, `{"\u0000":""}`, `{"a b":"c"}`, `{"a":"` + "\x7f" + `"}`,
		`{"Upgrade":"h2c"}`, `{"X-A":"\ud800"}`, `{"X-A":"1"`, `{"":"1"}`, ` {"X-A":"1"} `, `{"X-A":["1"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		start := time.Now()
		hs, err := ParseHeaders(raw)
		checkTime(t, start)
		if err != nil {
			require.Nil(t, hs)
			require.True(t, strings.HasPrefix(err.Error(), "headers: "), err.Error())
			return
		}
		for i, h := range hs {
			require.True(t, validHeaderName(h.Name), h.Name)
			require.True(t, validHeaderValue(h.Value), h.Value)
			require.Equal(t, textproto.CanonicalMIMEHeaderKey(h.Name), h.Name)
			require.False(t, reservedHeader(h.Name), h.Name)
			if i > 0 {
				require.Less(t, hs[i-1].Name, h.Name, "sorted and unique")
			}
			// What ParseHeaders accepts, Deliver accepts.
			_, err := checkHeader(h.Name, h.Value)
			require.NoError(t, err)
		}
	})
}
