package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Address classes, with their article, as used in AddressRefusedError.Class.
const (
	classUnspecified = "an unspecified"
	classLoopback    = "a loopback"
	classPrivate     = "a private"
	classLinkLocal   = "a link-local"
	classMulticast   = "a multicast"
	classBroadcast   = "a broadcast"
	classShared      = "a shared (carrier-grade NAT)"
	classReserved    = "a reserved"
	classMetadata    = "a cloud metadata"
)

// metadataAddrs are cloud instance-metadata services. They are refused even
// with AllowPrivateNetworks, unless listed in AllowedCIDRs: they hand out
// credentials to whoever asks.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack...
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IPv6
}

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	sharedCGNAT = netip.MustParsePrefix("100.64.0.0/10")
	broadcast   = netip.MustParseAddr("255.255.255.255")
	nat64       = []netip.Prefix{netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("64:ff9b:1::/48")}
	sixToFour   = netip.MustParsePrefix("2002::/16")
	reserved    = []netip.Prefix{
		netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
		netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
		netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
		netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
		netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
		netip.MustParsePrefix("240.0.0.0/4"),     // reserved
		netip.MustParsePrefix("100::/64"),        // discard-only
		netip.MustParsePrefix("2001:db8::/32"),   // documentation
		netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	}
)

// classify returns the class of an address delivery must not reach by
// default, or "" for a public address.
func classify(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	switch {
	case slices.Contains(metadataAddrs, ip):
		return classMetadata
	case ip.IsUnspecified() || thisNetwork.Contains(ip):
		return classUnspecified
	case ip.IsLoopback():
		return classLoopback
	case ip.IsMulticast():
		return classMulticast
	case ip == broadcast:
		return classBroadcast
	case ip.IsLinkLocalUnicast():
		return classLinkLocal
	case ip.IsPrivate():
		return classPrivate
	case sharedCGNAT.Contains(ip):
		return classShared
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return classReserved
		}
	}
	// IPv6 forms that embed an IPv4 address reach that address.
	if ip.Is6() {
		b := ip.As16()
		for _, p := range nat64 {
			if p.Contains(ip) {
				return classify(netip.AddrFrom4([4]byte(b[12:16])))
			}
		}
		if sixToFour.Contains(ip) {
			return classify(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return ""
}

// ipPolicy decides which addresses delivery may connect to.
type ipPolicy struct {
	allowPrivate bool
	allowed      []netip.Prefix
}

// check returns an *AddressRefusedError for an address delivery must not
// reach, nil otherwise.
func (p *ipPolicy) check(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	for _, pfx := range p.allowed {
		if pfx.Contains(ip) {
			return nil
		}
	}
	class := classify(ip)
	if class == "" || (p.allowPrivate && class != classMetadata) {
		return nil
	}
	return &AddressRefusedError{Addr: ip, Class: class}
}

// guardedDialer resolves through the configured Resolver, checks every
// resolved address against the policy, and dials the checked IP itself, so
// that the name is never resolved again behind its back (DNS rebinding).
type guardedDialer struct {
	policy   ipPolicy
	resolver Resolver
	dialer   net.Dialer
	// proxies holds the host:port of proxies returned by the environment
	// (HTTPS_PROXY and friends). They are configured by the operator and
	// dialled without a check; the target is checked in proxyFunc instead.
	proxies sync.Map
}

// minDialTimeout is the least time given to each resolved address before
// trying the next one, as net.Dialer does.
const minDialTimeout = 2 * time.Second

func (d *guardedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if _, ok := d.proxies.Load(addr); ok {
		return d.dialer.DialContext(ctx, network, addr)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, errors.New("invalid port " + strconv.Quote(portStr))
	}
	ips, err := d.resolveChecked(ctx, network, host)
	if err != nil {
		return nil, err
	}
	var firstErr error
	for i, ip := range ips {
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if deadline, ok := ctx.Deadline(); ok && i < len(ips)-1 {
			// Leave time for the remaining addresses.
			share := time.Until(deadline) / time.Duration(len(ips)-i)
			dctx, cancel = context.WithTimeout(ctx, max(share, minDialTimeout))
		}
		c, err := d.dialer.DialContext(dctx, network, netip.AddrPortFrom(ip, uint16(port)).String())
		cancel()
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// resolveChecked returns the addresses of host, or an error if any of them is
// refused: a name that mixes public and private addresses is refused whole.
func (d *guardedDialer) resolveChecked(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := d.policy.check(ip); err != nil {
			return nil, err
		}
		return []netip.Addr{ip}, nil
	}
	ipNetwork := "ip"
	switch network {
	case "tcp4":
		ipNetwork = "ip4"
	case "tcp6":
		ipNetwork = "ip6"
	}
	ips, err := d.resolver.LookupNetIP(ctx, ipNetwork, host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	for _, ip := range ips {
		if err := d.policy.check(ip); err != nil {
			return nil, err
		}
	}
	return ips, nil
}

// proxyFunc returns the Transport.Proxy function: nil when no proxy is set in
// the environment (the common case costs nothing per request). Otherwise it
// asks http.ProxyFromEnvironment, and when a request goes through a proxy,
// it checks the target's addresses before the request (the proxy, not
// Herald, will connect to the target) and lets the dialer reach the proxy.
func (d *guardedDialer) proxyFunc() func(*http.Request) (*url.URL, error) {
	set := false
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		if os.Getenv(k) != "" {
			set = true
		}
	}
	if !set {
		return nil
	}
	return func(req *http.Request) (*url.URL, error) {
		pu, err := http.ProxyFromEnvironment(req)
		if err != nil || pu == nil {
			return pu, err
		}
		if _, err := d.resolveChecked(req.Context(), "tcp", req.URL.Hostname()); err != nil {
			return nil, err
		}
		d.proxies.Store(proxyAddr(pu), struct{}{})
		return pu, nil
	}
}

// proxyAddr is the address the Transport dials for a proxy URL.
func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "socks5", "socks5h":
			port = "1080"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
