package webhook

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzTimeLimit is how long one fuzz input may take: every parser here is
// linear in its input, so only a stall gets near it, even on a loaded CI
// machine.
const fuzzTimeLimit = time.Second

// checkTime fails t if the input took longer than fuzzTimeLimit.
func checkTime(t *testing.T, start time.Time) {
	t.Helper()
	if d := time.Since(start); d > fuzzTimeLimit {
		t.Fatalf("took %v", d)
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, s := range []string{
		"", "0", "120", "00120", "-1", "+1", " 1", "1 ", "1.5", "0x10", "1e3",
		"9223372036", "9223372037", "18446744073709551616", strings.Repeat("9", 400),
		now.Add(time.Hour).Format(http.TimeFormat), now.Add(-time.Hour).Format(http.TimeFormat),
		"Monday, 02-Jan-06 15:04:05 GMT", "Mon Jan  2 15:04:05 2006", "Fri, 31 Dec 9999 23:59:59 GMT",
		"Sat, 01 Jan 0000 00:00:00 GMT", "soon", "\x00", "１２",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		start := time.Now()
		d := parseRetryAfter(v, now)
		checkTime(t, start)
		if d < 0 {
			t.Fatalf("%q: negative %v", v, d)
		}
		secs, err := strconv.ParseUint(v, 10, 63)
		switch {
		case err == nil && secs <= uint64(1<<63-1)/uint64(time.Second):
			if d != time.Duration(secs)*time.Second {
				t.Fatalf("%q: got %v", v, d)
			}
		case err == nil || errors.Is(err, strconv.ErrRange):
			if d != time.Duration(uint64(1<<63-1)/uint64(time.Second))*time.Second {
				t.Fatalf("%q: did not saturate: %v", v, d)
			}
		default:
			if ht, err := http.ParseTime(v); err != nil && d != 0 {
				t.Fatalf("%q is neither delta-seconds nor an HTTP-date, got %v", v, d)
			} else if err == nil && d != max(0, ht.Sub(now)) {
				t.Fatalf("%q: got %v, want %v", v, d, max(0, ht.Sub(now)))
			}
		}
	})
}

// FuzzMessageValidation checks that a message id and header Deliver accepts
// go onto the wire as exactly what they are: one request, each header once,
// nothing injected; and that one it refuses gets one non-retryable error.
func FuzzMessageValidation(f *testing.F) {
	for _, s := range []struct{ id, name, value string }{
		{"msg_1", "X-Tenant", "acme"},
		{"msg_1", "x-tenant", " padded\tvalue "},
		{"ABCxyz019_.:~+=/-", "X-A", ""},
		{strings.Repeat("a", 255), "X-A", "é ü obs-text \xff"},
		{strings.Repeat("a", 256), "X-A", "v"},
		{"", "X-A", "v"},
		{"msg_1\r\nX-Injected: 1", "X-A", "v"},
		{"msg_1\r\nContent-Length: 0\r\n\r\nPOST /x HTTP/1.1", "X-A", "v"},
		{"msg\x00", "X-A", "v"},
		{"msg 1", "X-A", "v"},
		{"msg_1", "X-A", "a\r\nX-Injected: 1"},
		{"msg_1", "X-A", "a\nb"},
		{"msg_1", "X-A", "a\x00b"},
		{"msg_1", "X-A\r\nX-B", "v"},
		{"msg_1", "X-A:", "v"},
		{"msg_1", "", "v"},
		{"msg_1", "Content-Length", "0"},
		{"msg_1", "transfer-encoding", "chunked"},
		{"msg_1", "Webhook-Id", "forged"},
		{"msg_1", "Host", "evil"},
		{"msg_1", "Authorization", "Bearer t"},
	} {
		f.Add(s.id, s.name, s.value, []byte(`{"n":1}`))
	}
	ep, err := NewClient(ClientConfig{AllowPrivateNetworks: true}).Endpoint(EndpointConfig{
		Name: "fuzz", URL: "http://127.0.0.1:1/hook", Secrets: []string{testSecret('f')},
		Headers: map[string]string{"Authorization": "Bearer static"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, name, value string, body []byte) {
		start := time.Now()
		m := &Message{ID: id, Headers: []Header{{Name: name, Value: value}}, Body: body}
		headers, err := checkMessage(m)
		checkTime(t, start)
		if err != nil {
			// The reason goes into logs and a text column: no raw
			// control characters from the input.
			var de *DeliveryError
			if !errors.As(err, &de) || de.Retryable || de.Reason == "" || strings.ContainsAny(de.Reason, "\r\n\x00") {
				t.Fatalf("refusal is not one non-retryable DeliveryError: %#v", err)
			}
			return
		}
		stamp := "1700000000" + ep.signer.Sign(id, 1700000000, body)
		wire := append(ep.appendRequestHead(nil, id, len(body), headers, stamp, 10), body...)
		br := bufio.NewReader(bytes.NewReader(wire))
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("accepted id %q, header %q: %q does not parse: %v", id, name, wire, err)
		}
		got, err := io.ReadAll(req.Body)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("body %q, want %q (%v)", got, body, err)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("bytes after the request: %q", wire)
		}
		for k, vs := range req.Header {
			if len(vs) != 1 {
				t.Fatalf("header %s sent %d times: %q", k, len(vs), wire)
			}
		}
		if req.Header.Get(HeaderID) != id {
			t.Fatalf("webhook-id %q, want %q", req.Header.Get(HeaderID), id)
		}
		// textproto trims the spaces and tabs around a value.
		if got, want := req.Header.Get(name), strings.Trim(value, " \t"); got != want {
			t.Fatalf("%s: %q, want %q", name, got, want)
		}
		want := []string{"Authorization", "Content-Length", "Content-Type", "User-Agent", "Webhook-Id", "Webhook-Signature", "Webhook-Timestamp", headers[0].Name}
		slices.Sort(want)
		want = slices.Compact(want)
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range req.Header {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(keys, want) {
			t.Fatalf("headers %v, want %v", keys, want)
		}
	})
}

// readerConn is a connection that reads r and has nothing else.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// FuzzH1Response feeds the lean HTTP/1.1 pool's response reader any bytes
// as the answer: it ends without panic, within its limits, with a clean
// outcome or one DeliveryError whose Reason says what went wrong.
func FuzzH1Response(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\nContent-Length: 5\r\n\r\nbusy!",
		"HTTP/1.1 429 Too Many Requests\r\nRetry-After: Fri, 31 Dec 9999 23:59:59 GMT\r\n\r\n",
		"HTTP/1.1 307 Temporary Redirect\r\nLocation: https://u:p@x/?t=s\r\n\r\n",
		"HTTP/1.1 302 Found\r\nLocation: ::%zz\r\n\r\n",
		"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\n\xff\x00\xc3\xa9",
		"HTTP/1.1 410 Gone\r\nConnection: close\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nbody until close",
		"HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("a", 3000),
		"HTTP/1.1 999 Weird\r\n\r\n",
		"HTTP/1.1 20 Short\r\n\r\n",
		"HTTP/2 200\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
		"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
		"SSH-2.0-OpenSSH_9.6\r\n",
		"\x16\x03\x01\x00\xa5",
		"",
	} {
		f.Add([]byte(s))
	}
	// A small head limit lets the fuzzer reach it.
	const maxHead = 4 << 10
	ep, err := NewClient(ClientConfig{AllowPrivateNetworks: true, MaxResponseHeaderBytes: maxHead, MaxResponseBytes: 8 << 10, KeepResponseBytes: 64}).
		Endpoint(EndpointConfig{Name: "fuzz", URL: "http://127.0.0.1:1/hook"})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, answer []byte) {
		start := time.Now()
		r := bytes.NewReader(answer)
		c := &h1Conn{nc: readerConn{r: r}, headLeft: -1}
		c.br = bufio.NewReaderSize(c, h1ReadBuffer)
		resp, err := ep.readHead(c)
		if err != nil {
			checkTime(t, start)
			if read := len(answer) - r.Len(); read > maxHead {
				t.Fatalf("read %d bytes of a head, limit %d", read, maxHead)
			}
			if de := ep.transportError(ctx, ctx, err); de.Reason == "" || !de.Retryable {
				t.Fatalf("%q: %#v", answer, de)
			}
			return
		}
		if resp.StatusCode >= 100 && resp.StatusCode <= 199 {
			t.Fatalf("%q: informational status %d returned", answer, resp.StatusCode)
		}
		res, _, err := ep.response(ctx, resp)
		checkTime(t, start)
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			if err != nil || res.Status != resp.StatusCode {
				t.Fatalf("%q: a 2xx gave %+v, %v", answer, res, err)
			}
			return
		}
		var de *DeliveryError
		if !errors.As(err, &de) || de.Reason == "" || de.RetryAfter < 0 {
			t.Fatalf("%q: %#v", answer, err)
		}
		// RFC 9110: a status outside 100..599 is not HTTP's.
		if valid := resp.StatusCode >= 100 && resp.StatusCode <= 599; valid && de.Status != resp.StatusCode || !valid && (de.Status != 0 || !de.Retryable) {
			t.Fatalf("%q: status %d gave %#v", answer, resp.StatusCode, de)
		}
		if len(de.Response) > 64 {
			t.Fatalf("kept %d bytes", len(de.Response))
		}
		if n := len(de.Response); n > 0 && !utf8.FullRune(de.Response[max(0, n-utf8.UTFMax+1):]) && utf8.Valid(answer[len(answer)-r.Len()-n:]) {
			t.Fatalf("kept %q ends in a split character", de.Response)
		}
	})
}

// FuzzEndpointURL builds an endpoint from any URL: it is refused with one
// *ConfigError that holds nothing of a password or query, or, on the lean
// HTTP/1.1 path, its request head is exactly one request to that URL.
func FuzzEndpointURL(f *testing.F) {
	for _, s := range []string{
		"http://example.com/hook", "http://example.com:8080/a/b?x=1&y=2", "http://[::1]:80/x", "https://example.com/",
		"http://user:hunter2@example.com/", "http://example.com/x#frag", "http://example.com/a%20b", "http://example.com/é",
		"http://exa mple.com/", "http://example.com/\r\nX: 1", "http://example.com%0d%0a/", "http://user:hunter2/x",
		"http:example.com", "http:///x", "ftp://example.com/", "//example.com/", "http://[fe80::1%25eth0]/",
		"http://example.com/?q=\xff", "http://%41:80/", "http://example.com:99999/", "",
	} {
		f.Add(s)
	}
	client := NewClient(ClientConfig{AllowPrivateNetworks: true})
	f.Fuzz(func(t *testing.T, raw string) {
		start := time.Now()
		ep, err := client.Endpoint(EndpointConfig{Name: "fuzz", URL: raw})
		checkTime(t, start)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != "url" {
				t.Fatalf("%q: %#v", raw, err)
			}
			for _, secret := range urlSecrets(raw) {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("%q: %q in %q", raw, secret, err)
				}
			}
			return
		}
		defer ep.Close()
		if ep.h1 == nil {
			return
		}
		wire := ep.appendRequestHead(nil, "msg_1", 0, nil, "1700000000", 10)
		br := bufio.NewReader(bytes.NewReader(wire))
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("%q: head %q does not parse: %v", raw, wire, err)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("%q: bytes after the request: %q", raw, wire)
		}
		if req.Host != ep.url.Host || req.URL.RequestURI() != ep.url.RequestURI() || len(req.Header.Values("Host")) != 0 {
			t.Fatalf("%q: head %q is not a request to %s", raw, wire, ep.url)
		}
	})
}

// urlSecrets returns the password, user name and query values of raw,
// found by hand so that a URL url.Parse refuses has them too: those of six
// bytes or more, longer than "http" and "https", which the errors hold.
func urlSecrets(raw string) []string {
	var out []string
	add := func(s string) {
		if len(s) >= 6 {
			out = append(out, s)
		}
	}
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		if auth, _, ok := strings.Cut(rest, "@"); ok && !strings.ContainsAny(auth, "/?#") {
			user, pass, _ := strings.Cut(auth, ":")
			add(user)
			add(pass)
		}
	}
	if _, q, ok := strings.Cut(raw, "?"); ok {
		q, _, _ = strings.Cut(q, "#")
		for part := range strings.SplitSeq(q, "&") {
			if _, v, ok := strings.Cut(part, "="); ok {
				add(v)
			}
		}
	}
	return out
}
