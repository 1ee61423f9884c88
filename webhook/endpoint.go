package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Defaults for EndpointConfig.
const (
	TimeoutDefault  = 15 * time.Second
	MaxConnsDefault = 64
)

// PermanentStatusesDefault are the 4xx statuses not retried unless an
// endpoint says otherwise: the request itself is wrong and will stay wrong.
var PermanentStatusesDefault = []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity}

// TLSConfig configures TLS towards one endpoint.
type TLSConfig struct {
	// CAFile is a PEM bundle of the CAs trusted for this endpoint, instead of
	// the system roots. Defaults to the system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key for mutual
	// TLS; both or neither. Defaults to no client certificate.
	CertFile, KeyFile string
	// MinVersion is "1.2" or "1.3". Defaults to "1.2".
	MinVersion string
}

// EndpointConfig configures one webhook receiver: how to reach and sign for
// it. Layer: the webhook library's input, independent of the relay and of
// Herald's configuration file; Client.Endpoint builds an Endpoint from it.
type EndpointConfig struct {
	// Name identifies the endpoint in errors and metrics. Required.
	Name string
	// URL is the absolute http or https URL requests are POSTed to. Required.
	URL string
	// Secrets are "whsec_..." Standard Webhooks secrets, newest first. Every
	// request carries one signature per secret, so a receiver can rotate its
	// key with no gap. Defaults to none: no webhook-signature header.
	Secrets []string
	// Timeout bounds one attempt, from dialling to reading the response
	// body. Defaults to 15s.
	Timeout time.Duration
	// Headers are sent with every request. A message's own header of the
	// same name replaces one of these. Reserved names are refused (see
	// ParseHeaders). Defaults to none.
	Headers map[string]string
	// MaxConns is the number of idle connections kept to the endpoint; set
	// it to the endpoint's delivery concurrency. Defaults to 64.
	MaxConns int
	// FollowRedirects follows up to 10 redirects that keep the POST and its
	// body (307, 308). Defaults to false: a 3xx is a failed, retryable
	// attempt.
	FollowRedirects bool
	// PermanentStatuses are 4xx statuses that are not retried. 410 Gone is
	// never retried whatever this says. Nil defaults to 400, 413 and 422; an
	// empty, non-nil slice retries every status but 410.
	PermanentStatuses []int
	// TLS configures TLS for https URLs.
	TLS TLSConfig
	// Format is how a message is framed: FormatStandardWebhooks,
	// FormatCloudEventsBinary or FormatCloudEventsStructured. Every format
	// carries the Standard Webhooks headers, signed over the body as sent.
	// Defaults to FormatStandardWebhooks.
	Format string
	// CloudEventsSource is the source attribute of a CloudEvents endpoint's
	// events, a URI-reference. Defaults to CloudEventsSourceDefault
	// ("herald").
	CloudEventsSource string
}

// Endpoint sends messages to one receiver over its own connection pool. It is
// safe for concurrent use.
type Endpoint struct {
	name            string
	url             *url.URL
	template        *http.Request // shared, never modified: see Deliver
	signer          *Signer
	timeout         time.Duration
	timeoutReason   string
	static          []staticHeader
	followRedirects bool
	permanent       [100]bool // index: status - 400
	maxResponse     int64
	maxHead         int64 // ClientConfig.MaxResponseHeaderBytes
	keepResponse    int
	transport       *http.Transport // nil when h1 carries every request
	client          *http.Client
	// h1 is set for plain-http endpoints reached without a proxy and
	// without following redirects, unless ClientConfig.DisableLeanPool;
	// it carries every request then, with
	// h1Head (request line, Host, User-Agent, Content-Type) and h1Static
	// (the configured headers) rendered once.
	h1       *h1Pool
	h1Head   []byte
	h1Static []h1StaticHeader
	format   string // one of the Format* constants
	ceSource string
}

// staticHeader is a header sent with every request. vals has len == cap so
// that it can be shared by concurrent requests: an append would copy it.
type staticHeader struct {
	key  string
	vals []string
}

// Endpoint validates cfg and returns an Endpoint with its own transport.
// Errors are *ConfigError naming the field; they never contain a secret.
func (c *Client) Endpoint(cfg EndpointConfig) (*Endpoint, error) {
	if cfg.Name == "" {
		return nil, &ConfigError{Field: "name", Err: errors.New("required")}
	}
	u, err := parseEndpointURL(cfg.URL)
	if err != nil {
		return nil, &ConfigError{Field: "url", Err: err}
	}
	e := &Endpoint{
		name: cfg.Name,
		url:  u,
		template: &http.Request{
			Method:     http.MethodPost,
			URL:        u,
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Host:       u.Host,
		},
		followRedirects: cfg.FollowRedirects,
		maxResponse:     c.cfg.MaxResponseBytes,
		maxHead:         c.cfg.MaxResponseHeaderBytes,
		keepResponse:    c.cfg.KeepResponseBytes,
	}

	if e.format, e.ceSource, err = checkFormat(cfg.Format, cfg.CloudEventsSource); err != nil {
		return nil, err
	}
	contentType := "application/json"
	if e.format == FormatCloudEventsStructured {
		contentType = cloudEventsContentType
	}

	if len(cfg.Secrets) > 0 {
		e.signer = &Signer{secrets: make([]Secret, 0, len(cfg.Secrets))}
		for i, raw := range cfg.Secrets {
			sec, err := ParseSecret(raw)
			if err != nil {
				return nil, &ConfigError{Field: "secrets[" + strconv.Itoa(i) + "]", Err: err}
			}
			e.signer.secrets = append(e.signer.secrets, sec)
		}
	}

	switch {
	case cfg.Timeout < 0:
		return nil, &ConfigError{Field: "timeout", Err: errors.New("must not be negative, got " + cfg.Timeout.String())}
	case cfg.Timeout == 0:
		e.timeout = TimeoutDefault
	default:
		e.timeout = cfg.Timeout
	}
	e.timeoutReason = "timeout after " + e.timeout.String()

	maxConns := cfg.MaxConns
	switch {
	case maxConns < 0:
		return nil, &ConfigError{Field: "max_conns", Err: errors.New("must not be negative, got " + strconv.Itoa(maxConns))}
	case maxConns == 0:
		maxConns = MaxConnsDefault
	}

	permanent := cfg.PermanentStatuses
	if permanent == nil {
		permanent = PermanentStatusesDefault
	}
	for i, s := range permanent {
		if s < 400 || s > 499 {
			return nil, &ConfigError{Field: "permanent_statuses[" + strconv.Itoa(i) + "]", Err: errors.New(strconv.Itoa(s) + " is not a 4xx status")}
		}
		e.permanent[s-400] = true
	}

	e.static = append(e.static,
		staticHeader{"Content-Type", []string{contentType}},
		staticHeader{"User-Agent", []string{c.cfg.UserAgent}},
		// A nil Idempotency-Key is not sent, but tells net/http that the
		// POST may be replayed on a fresh connection when a kept-alive one
		// turns out to be closed. Receivers deduplicate on webhook-id.
		staticHeader{"Idempotency-Key", nil},
	)
	hasAuth := false
	for name, value := range cfg.Headers {
		h, err := checkHeader(name, value)
		if err != nil {
			return nil, &ConfigError{Field: "headers", Err: err}
		}
		if e.format != FormatStandardWebhooks && strings.HasPrefix(h.Name, ceHeaderPrefix) {
			return nil, &ConfigError{Field: "headers", Err: errors.New(strconv.Quote(h.Name) + " is reserved on a CloudEvents endpoint")}
		}
		e.static = append(e.static, staticHeader{h.Name, []string{h.Value}})
		hasAuth = hasAuth || h.Name == "Authorization"
	}
	if u.User != nil && !hasAuth {
		// Credentials in the URL are sent as Basic auth, as http.Client
		// does (Transport.RoundTrip alone would drop them).
		pass, _ := u.User.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + pass))
		e.static = append(e.static, staticHeader{"Authorization", []string{"Basic " + cred}})
	}

	tlsCfg, err := buildTLS(cfg.TLS)
	if err != nil {
		return nil, err
	}
	d := &guardedDialer{
		policy:   ipPolicy{allowPrivate: c.cfg.AllowPrivateNetworks, allowed: c.cfg.AllowedCIDRs},
		resolver: c.cfg.Resolver,
		dialer:   net.Dialer{KeepAlive: 30 * time.Second},
	}
	proxy := d.proxyFunc()
	if u.Scheme == "http" && !e.followRedirects && !proxied(proxy, e.template) && !c.cfg.DisableLeanPool {
		// The lean pool carries every request: no net/http Transport, which
		// would cost each of a relay's thousands of endpoints a few KB of
		// heap (times GOGC in the relay's RSS) for nothing.
		e.useH1(d.DialContext, maxConns)
		return e, nil
	}
	e.transport = &http.Transport{
		Proxy:       proxy,
		DialContext: d.DialContext,
		// A custom dialer and TLS config turn HTTP/2 off unless forced.
		ForceAttemptHTTP2:   true,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
		// net/http's default, 10 MiB a head, is far more than any
		// receiver sends; the h1 pool has the same limit.
		MaxResponseHeaderBytes: e.maxHead,
		// Response bodies are only drained: no gzip reader, no
		// Accept-Encoding header.
		DisableCompression: true,
		HTTP2: &http.HTTP2Config{
			// Detect a dead HTTP/2 connection instead of failing every
			// stream on it until their timeouts.
			SendPingTimeout: 30 * time.Second,
		},
	}
	e.client = &http.Client{Transport: e.transport, CheckRedirect: checkRedirect}
	return e, nil
}

// proxied reports whether requests made from template go through a proxy
// from the environment (HTTP_PROXY and friends, read once per process);
// proxy is the guarded dialer's proxy function, nil when none is set.
func proxied(proxy func(*http.Request) (*url.URL, error), template *http.Request) bool {
	if proxy == nil {
		return false
	}
	pu, err := http.ProxyFromEnvironment(template)
	return err != nil || pu != nil
}

// useH1 makes the endpoint send over an h1Pool, rendering its fixed
// request lines once.
func (e *Endpoint) useH1(dial func(ctx context.Context, network, addr string) (net.Conn, error), maxConns int) {
	port := e.url.Port()
	if port == "" {
		port = "80"
	}
	e.h1 = &h1Pool{addr: net.JoinHostPort(e.url.Hostname(), port), dial: dial, maxIdle: maxConns, patience: h1DialPatience}
	var head []byte
	head = append(head, "POST "...)
	head = append(head, e.url.RequestURI()...)
	head = append(head, " HTTP/1.1\r\nHost: "...)
	head = append(head, e.url.Host...)
	head = append(head, "\r\n"...)
	for _, sh := range e.static {
		switch {
		case sh.vals == nil:
			// Idempotency-Key: only a signal to net/http, never sent.
		case sh.key == "Content-Type" || sh.key == "User-Agent":
			head = appendHeader(head, sh.key, sh.vals[0])
		default:
			e.h1Static = append(e.h1Static, h1StaticHeader{key: sh.key, line: appendHeader(nil, sh.key, sh.vals[0])})
		}
	}
	e.h1Head = head
}

func parseEndpointURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// Not err itself: url.Parse errors quote the input, which may
		// hold credentials.
		return nil, errors.New("not a valid URL: " + parseProblem(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("scheme must be http or https, got " + strconv.Quote(u.Scheme))
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("must be absolute, with a host")
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return nil, errors.New("must not have a #fragment")
	}
	// url.Parse keeps the query as written (it refuses control bytes), and
	// a space in it would end the request line early.
	if strings.IndexByte(u.RawQuery, ' ') >= 0 {
		return nil, errors.New("query must not hold a space: write it as %20 or +")
	}
	return u, nil
}

// CheckURL reports why Client.Endpoint would refuse raw as an endpoint's
// URL, or nil. The error never holds the URL's user info or query.
func CheckURL(raw string) error {
	_, err := parseEndpointURL(raw)
	return err
}

func buildTLS(cfg TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch cfg.MinVersion {
	case "", "1.2":
	case "1.3":
		tc.MinVersion = tls.VersionTLS13
	default:
		return nil, &ConfigError{Field: "tls.min_version", Err: errors.New(strconv.Quote(cfg.MinVersion) + " is not supported, use \"1.2\" or \"1.3\"")}
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, &ConfigError{Field: "tls.ca_file", Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &ConfigError{Field: "tls.ca_file", Err: errors.New(cfg.CAFile + " holds no PEM certificate")}
		}
		tc.RootCAs = pool
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, &ConfigError{Field: "tls.cert_file", Err: errors.New("cert_file and key_file go together")}
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, &ConfigError{Field: "tls.cert_file", Err: err}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// checkRedirect follows redirects that keep the POST (307, 308). A 301, 302
// or 303 would turn it into a body-less GET, which cannot deliver anything, so
// that response is returned as is and counts as a failed attempt.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if req.Method != http.MethodPost {
		return http.ErrUseLastResponse
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return &permanentError{reason: "redirect to a " + strconv.Quote(req.URL.Scheme) + " URL refused"}
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// Name returns the endpoint's name.
func (e *Endpoint) Name() string { return e.name }

// Close closes the endpoint's idle connections. An Endpoint still works
// after Close; it opens new connections as needed.
func (e *Endpoint) Close() {
	if e.transport != nil {
		e.transport.CloseIdleConnections()
	}
	if e.h1 != nil {
		e.h1.closeIdle()
	}
}

// Message is one webhook to send.
type Message struct {
	// ID is sent as webhook-id; receivers deduplicate on it. Required: 1 to
	// MaxIDLength bytes of A-Z a-z 0-9 and _.:~+=/- (the rule of
	// outbox.messages.id).
	ID string
	// Body is sent exactly as given, as application/json.
	Body []byte
	// Headers are extra headers for this message, see ParseHeaders.
	Headers []Header
	// Type is the CloudEvents type attribute (the relay sets the topic).
	// Required by CloudEvents endpoints; unused by others.
	Type string
	// Time is the CloudEvents time attribute (the relay sets the time the
	// message was written). Defaults to the time of the attempt.
	Time time.Time
}

// bufPool holds scratch buffers for the timestamp and signatures.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// drainPool holds buffers for reading response bodies.
var drainPool = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// Result is a receiver's acknowledgment of a delivery.
type Result struct {
	// Status is the 2xx the receiver answered with.
	Status int
}

// Send makes one attempt to deliver m: a POST of m.Body, exactly as given,
// with Content-Type: application/json, the User-Agent, the endpoint's
// static headers, m.Headers, webhook-id (m.ID), webhook-timestamp (now, in
// Unix seconds) and, when the endpoint has secrets, webhook-signature.
//
// It returns the Result of a 2xx, and a *DeliveryError otherwise (with a
// zero Result: the error holds the status, if an answer came). The attempt
// is bounded by ctx and by the endpoint's Timeout, and redirects are not
// followed unless configured.
//
// A 2xx is success as soon as its status line arrives: the receiver has
// accepted the message. Its body is read only so that the connection can be
// reused, up to MaxResponseBytes and within Timeout; a longer, slower or
// broken body closes the connection but does not fail the delivery, since
// sending the message again would only duplicate it.
func (e *Endpoint) Send(ctx context.Context, m *Message) (Result, error) {
	headers, err := checkMessage(m)
	if err != nil {
		return Result{}, err
	}
	body := m.Body
	if e.format != FormatStandardWebhooks {
		if body, headers, err = e.cloudEvent(m, headers); err != nil {
			return Result{}, err
		}
	}

	// The timestamp and all signatures share one string allocation.
	now := time.Now().Unix()
	bp := bufPool.Get().(*[]byte)
	buf := strconv.AppendInt((*bp)[:0], now, 10)
	tsLen := len(buf)
	if e.signer != nil {
		buf = e.signer.AppendSignature(buf, m.ID, now, body)
	}
	stamp := string(buf)
	*bp = buf
	bufPool.Put(bp)

	if e.h1 != nil {
		return e.deliverH1(ctx, m.ID, body, headers, stamp, tsLen)
	}
	return e.deliverHTTP(ctx, m.ID, body, headers, stamp, tsLen)
}

// Deliver is Send for callers that need only to know whether the receiver
// acknowledged m: nil for a 2xx, a *DeliveryError otherwise.
func (e *Endpoint) Deliver(ctx context.Context, m *Message) error {
	_, err := e.Send(ctx, m)
	return err
}

// checkMessage checks what of m goes into the request head as it is, and
// returns its headers with canonical names. The error is a non-retryable
// *DeliveryError.
func checkMessage(m *Message) ([]Header, error) {
	// A CR or LF in the id would add headers, or a whole request on a
	// kept-alive connection.
	if err := checkMessageID(m.ID); err != nil {
		return nil, &DeliveryError{Reason: err.Error(), Err: err}
	}
	// ParseHeaders already checked these, but a Message can be built by
	// hand; the check does not allocate for canonical names.
	headers, err := canonicalHeaders(m.Headers)
	if err != nil {
		return nil, &DeliveryError{Reason: "message header " + err.Error(), Err: err}
	}
	return headers, nil
}

// canonicalHeaders checks a message's headers and returns them with
// canonical names, copying the slice only if a name was not canonical.
func canonicalHeaders(hs []Header) ([]Header, error) {
	out := hs
	for i, h := range hs {
		ch, err := checkHeader(h.Name, h.Value)
		if err != nil {
			return nil, err
		}
		if ch.Name != h.Name {
			if &out[0] == &hs[0] {
				out = append([]Header(nil), hs...)
			}
			out[i] = ch
		}
	}
	return out, nil
}

// deliverHTTP makes the attempt of Send with net/http. stamp holds the
// timestamp (its first tsLen bytes) and then the signatures.
func (e *Endpoint) deliverHTTP(parent context.Context, id string, body []byte, headers []Header, stamp string, tsLen int) (Result, error) {
	nvals := 2 + len(headers)
	if tsLen < len(stamp) {
		nvals++
	}
	// One backing array for every per-message value; static values are
	// shared (see staticHeader).
	vals := make([]string, nvals)
	h := make(http.Header, len(e.static)+nvals)
	for _, sh := range e.static {
		h[sh.key] = sh.vals
	}
	for i, mh := range headers {
		vals[i] = mh.Value
		h[mh.Name] = vals[i : i+1 : i+1]
	}
	i := len(headers)
	vals[i], vals[i+1] = id, stamp[:tsLen]
	h[canonicalID] = vals[i : i+1 : i+1]
	h[canonicalTimestamp] = vals[i+1 : i+2 : i+2]
	if tsLen < len(stamp) {
		vals[i+2] = stamp[tsLen:]
		h[canonicalSignature] = vals[i+2 : i+3 : i+3]
	}

	ctx, cancel := context.WithTimeout(parent, e.timeout)
	defer cancel()
	// WithContext copies the template: one allocation for the request.
	req := e.template.WithContext(ctx)
	req.Header = h
	req.Body, req.GetBody = http.NoBody, getNoBody
	req.ContentLength = int64(len(body))
	if len(body) > 0 {
		// GetBody lets net/http replay the request on a fresh connection
		// and follow 307/308 redirects.
		req.Body = newBodyReader(body)
		req.GetBody = func() (io.ReadCloser, error) { return newBodyReader(body), nil }
	}

	var resp *http.Response
	var err error
	if e.followRedirects {
		resp, err = e.client.Do(req)
	} else {
		// No redirect handling needed: skip http.Client's bookkeeping.
		resp, err = e.transport.RoundTrip(req)
	}
	if err != nil {
		return Result{}, e.transportError(parent, ctx, err)
	}
	res, _, err := e.response(ctx, resp)
	return res, err
}

// response classifies a response and drains its body. clean reports that
// the body was read to its end, so that the connection can carry another
// request.
func (e *Endpoint) response(ctx context.Context, resp *http.Response) (res Result, clean bool, err error) {
	status := resp.StatusCode
	if status >= 200 && status <= 299 {
		_, err := e.drain(ctx, resp, nil)
		return Result{Status: status}, err == nil, nil
	}
	if status < 100 || status > 599 {
		// RFC 9110 15: not an HTTP status, and 0 would read as "no
		// response" in DeliveryError.Status. The connection is closed.
		resp.Body.Close()
		return Result{}, false, &DeliveryError{Reason: "invalid response: status code " + strconv.Itoa(status) + " is outside 100..599", Retryable: true}
	}
	de := &DeliveryError{Status: status, Reason: statusReason(status), Retryable: true}
	switch {
	case status == http.StatusGone:
		de.Gone, de.Retryable = true, false
	case status >= 400 && status <= 499 && e.permanent[status-400]:
		de.Retryable = false
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		de.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	case status >= 300 && status <= 399:
		if loc, err := resp.Location(); err == nil {
			de.Reason = "redirect to " + redactedURL(loc) + " not followed"
		}
	}
	// Three bytes more than kept show whether the cut splits a character.
	de.Response, de.Err = e.drain(ctx, resp, make([]byte, 0, e.keepResponse+utf8.UTFMax-1))
	de.Response = cutAtRune(de.Response, e.keepResponse)
	if de.Err != nil && (ctx.Err() != nil || isTimeout(de.Err)) {
		de.Err = errors.Join(errors.New(e.timeoutReason+" reading the response"), de.Err)
	}
	return Result{}, de.Err == nil, de
}

// drain reads the body up to MaxResponseBytes, appending the first
// cap(keep) bytes to keep, and closes it. A body left unread closes the
// connection instead of returning it to the pool. ctx is the attempt's.
func (e *Endpoint) drain(ctx context.Context, resp *http.Response, keep []byte) ([]byte, error) {
	defer resp.Body.Close()
	if resp.ContentLength > e.maxResponse {
		return keep, e.tooLarge()
	}
	bp := drainPool.Get().(*[]byte)
	defer drainPool.Put(bp)
	buf := *bp
	var total int64
	for {
		// Read one byte past the limit to tell "exactly the limit" from
		// "more".
		chunk := buf
		if left := e.maxResponse + 1 - total; left < int64(len(chunk)) {
			chunk = chunk[:left]
		}
		n, err := resp.Body.Read(chunk)
		if room := cap(keep) - len(keep); room > 0 {
			keep = append(keep, chunk[:min(n, room)]...)
		}
		total += int64(n)
		if total > e.maxResponse {
			return keep, e.tooLarge()
		}
		if err == io.EOF {
			// An end once the attempt is over is not proof of a whole
			// body: net/http over TLS ends a body its deadline cut with
			// a plain io.EOF when the close races the read.
			return keep, ctx.Err()
		}
		if err != nil {
			return keep, err
		}
	}
}

// cutAtRune returns at most the first n bytes of b, leaving out a UTF-8
// character the cut would split. Bytes that are not UTF-8 are kept as they
// are.
func cutAtRune(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[:n]
	for i := len(b) - 1; i >= 0 && i > len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

func (e *Endpoint) tooLarge() error {
	return errors.Join(ErrResponseTooLarge, errors.New("response larger than "+strconv.FormatInt(e.maxResponse, 10)+" bytes"))
}

// parseRetryAfter parses a Retry-After value, delta-seconds or HTTP-date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 63); err == nil || errors.Is(err, strconv.ErrRange) {
		// An out-of-range value saturates (secs is then the maximum).
		const maxSecs = uint64(1<<63-1) / uint64(time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// newBodyReader returns the request body in the one form net/http
// recognises as in memory (io.NopCloser around a *bytes.Reader): for any
// other type it flushes the headers before the body, two writes and two
// TCP segments per request instead of one.
func newBodyReader(b []byte) io.ReadCloser {
	return io.NopCloser(bytes.NewReader(b))
}

func getNoBody() (io.ReadCloser, error) { return http.NoBody, nil }
