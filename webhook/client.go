package webhook

import (
	"cmp"
	"context"
	"net"
	"net/netip"
)

// Defaults for ClientConfig.
const (
	MaxResponseBytesDefault  = 64 << 10
	KeepResponseBytesDefault = 1024
	// MaxResponseHeaderBytesDefault bounds a response head. A webhook
	// answer's headers are a few hundred bytes, and nginx refuses an
	// upstream's over 4 or 8 KiB (proxy_buffer_size): 64 KiB leaves room
	// for any real receiver, while 64 connections reading hostile heads
	// hold 4 MiB, not the 640 MiB that net/http's Transport default
	// (10 MiB each) would allow.
	MaxResponseHeaderBytesDefault = 64 << 10
)

// Resolver resolves a host name to IP addresses. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ClientConfig configures what every endpoint of a Client shares: the
// address policy and the limits on responses. The zero value is usable.
type ClientConfig struct {
	// AllowPrivateNetworks lets deliveries reach loopback, private
	// (RFC 1918, fc00::/7), link-local, shared (100.64.0.0/10), multicast,
	// unspecified and reserved addresses. Cloud metadata addresses
	// (169.254.169.254, fd00:ec2::254, ...) stay refused unless listed in
	// AllowedCIDRs. Defaults to false.
	AllowPrivateNetworks bool
	// AllowedCIDRs are reachable even when they would be refused otherwise.
	// Defaults to none.
	AllowedCIDRs []netip.Prefix
	// UserAgent is sent with every request. Defaults to
	// "Herald/<Version> (+https://github.com/herald-relay/herald)".
	UserAgent string
	// MaxResponseBytes is the most of a response body read. Past it Herald
	// stops reading and closes that connection. Defaults to 64 KiB.
	MaxResponseBytes int64
	// MaxResponseHeaderBytes is the most of a response head read: the
	// status line and the headers, informational (1xx) answers included.
	// A longer head fails the attempt (retryable) and closes that
	// connection. Defaults to 64 KiB.
	MaxResponseHeaderBytes int64
	// KeepResponseBytes is how much of a non-2xx response body is kept in
	// DeliveryError.Response. Defaults to 1024, at most MaxResponseBytes.
	KeepResponseBytes int
	// Resolver resolves endpoint host names at dial time. Defaults to
	// net.DefaultResolver.
	Resolver Resolver
	// DisableLeanPool sends to plain-http endpoints with net/http, as to
	// https ones, instead of Herald's lean HTTP/1.1 pool (see h1.go). The
	// pool spends less CPU per delivery; net/http is the reference its
	// behaviour is tested against, and offers what the pool does not,
	// such as httptrace hooks. Defaults to false:
	// plain-http endpoints reached without a proxy and without following
	// redirects use the lean pool.
	DisableLeanPool bool
}

// WithDefaults returns a copy of the config with defaults applied.
func (c ClientConfig) WithDefaults() ClientConfig {
	c.UserAgent = cmp.Or(c.UserAgent, "Herald/"+Version+" (+https://github.com/herald-relay/herald)")
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = MaxResponseBytesDefault
	}
	if c.MaxResponseHeaderBytes <= 0 {
		c.MaxResponseHeaderBytes = MaxResponseHeaderBytesDefault
	}
	if c.KeepResponseBytes <= 0 {
		c.KeepResponseBytes = KeepResponseBytesDefault
	}
	c.KeepResponseBytes = int(min(int64(c.KeepResponseBytes), c.MaxResponseBytes))
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	allowed := make([]netip.Prefix, 0, len(c.AllowedCIDRs))
	for _, p := range c.AllowedCIDRs {
		if p.IsValid() {
			allowed = append(allowed, p.Masked())
		}
	}
	c.AllowedCIDRs = allowed
	return c
}

// Client creates endpoints that share one configuration. It holds no
// connections itself: each Endpoint has its own pool. It is safe for
// concurrent use.
type Client struct {
	cfg ClientConfig
}

// NewClient returns a Client for cfg, with defaults applied.
func NewClient(cfg ClientConfig) *Client {
	return &Client{cfg: cfg.WithDefaults()}
}
