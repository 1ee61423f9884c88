package webhook

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// staticResolver answers from a fixed table, as a hostile or rebinding DNS
// server could.
type staticResolver map[string][]netip.Addr

func (r staticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	ips, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return ips, nil
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		want string
	}{
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"2606:4700:4700::1111", ""},
		{"127.0.0.1", classLoopback},
		{"127.1.2.3", classLoopback},
		{"::1", classLoopback},
		{"::ffff:127.0.0.1", classLoopback},
		{"10.1.2.3", classPrivate},
		{"172.16.0.1", classPrivate},
		{"172.31.255.255", classPrivate},
		{"172.32.0.1", ""},
		{"192.168.1.1", classPrivate},
		{"::ffff:192.168.1.1", classPrivate},
		{"fc00::1", classPrivate},
		{"fd12:3456::1", classPrivate},
		{"169.254.1.1", classLinkLocal},
		{"fe80::1", classLinkLocal},
		{"fe80::1%eth0", classLinkLocal},
		{"169.254.169.254", classMetadata},
		{"::ffff:169.254.169.254", classMetadata},
		{"fd00:ec2::254", classMetadata},
		{"224.0.0.1", classMulticast},
		{"239.255.255.250", classMulticast},
		{"ff02::1", classMulticast},
		{"0.0.0.0", classUnspecified},
		{"0.1.2.3", classUnspecified},
		{"::", classUnspecified},
		{"255.255.255.255", classBroadcast},
		{"100.64.0.1", classShared},
		{"100.100.100.200", classMetadata},
		{"198.18.0.1", classReserved},
		{"240.0.0.1", classReserved},
		{"2001:db8::1", classReserved},
		{"64:ff9b::a00:1", classPrivate},     // NAT64 of 10.0.0.1
		{"64:ff9b::808:808", ""},             // NAT64 of 8.8.8.8
		{"2002:7f00:1::1", classLoopback},    // 6to4 of 127.0.0.1
		{"2002:a9fe:a9fe::1", classMetadata}, // 6to4 of 169.254.169.254
		{"2002:808:808::1", ""},              // 6to4 of 8.8.8.8
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, classify(netip.MustParseAddr(tt.addr)), tt.addr)
	}
}

func TestIPPolicy(t *testing.T) {
	t.Parallel()
	strict := ipPolicy{}
	require.NoError(t, strict.check(netip.MustParseAddr("8.8.8.8")))
	require.Error(t, strict.check(netip.MustParseAddr("10.0.0.1")))

	open := ipPolicy{allowPrivate: true}
	require.NoError(t, open.check(netip.MustParseAddr("10.0.0.1")))
	require.NoError(t, open.check(netip.MustParseAddr("::1")))
	require.Error(t, open.check(netip.MustParseAddr("169.254.169.254")), "metadata stays refused")

	allowed := ipPolicy{allowed: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("169.254.169.254/32")}}
	require.NoError(t, allowed.check(netip.MustParseAddr("10.1.2.3")))
	require.NoError(t, allowed.check(netip.MustParseAddr("::ffff:10.1.2.3")))
	require.NoError(t, allowed.check(netip.MustParseAddr("169.254.169.254")))
	require.Error(t, allowed.check(netip.MustParseAddr("10.2.0.1")))
}

func TestDeliver_RefusesInternalAddresses(t *testing.T) {
	t.Parallel()
	srv, reqs := newServer(t, nil)
	srvURL, err := url.Parse(srv.URL)
	require.NoError(t, err)

	tests := []struct {
		url    string
		reason string
	}{
		{srv.URL, "refused: 127.0.0.1 is a loopback address (delivery.allow_private_networks is false)"},
		{"http://[::1]:" + srvURL.Port(), "refused: ::1 is a loopback address"},
		{"http://10.1.2.3/", "refused: 10.1.2.3 is a private address (delivery.allow_private_networks is false)"},
		{"http://172.16.5.4:8080/", "refused: 172.16.5.4 is a private address"},
		{"https://192.168.0.10/", "refused: 192.168.0.10 is a private address"},
		{"http://169.254.10.10/", "refused: 169.254.10.10 is a link-local address"},
		{"http://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is a cloud metadata address"},
		{"http://[fd00:ec2::254]/", "refused: fd00:ec2::254 is a cloud metadata address"},
		{"http://[fc00::5]/", "refused: fc00::5 is a private address"},
		{"http://[fe80::1]/", "refused: fe80::1 is a link-local address"},
		{"http://224.0.0.251/", "refused: 224.0.0.251 is a multicast address"},
		{"http://[ff02::1]/", "refused: ff02::1 is a multicast address"},
		{"http://0.0.0.0:" + srvURL.Port(), "refused: 0.0.0.0 is an unspecified address"},
		{"http://[::ffff:127.0.0.1]:" + srvURL.Port(), "refused: 127.0.0.1 is a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			ep := newEndpointWith(t, ClientConfig{}, EndpointConfig{URL: tt.url})
			de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1", Body: []byte(`{}`)}))
			require.True(t, strings.HasPrefix(de.Reason, tt.reason), de.Reason)
			require.True(t, de.Retryable)
			require.Zero(t, de.Status)
			var refused *AddressRefusedError
			require.ErrorAs(t, de, &refused)
		})
	}
	t.Cleanup(func() { require.Empty(t, reqs, "a refused delivery reached the server") })
}

func TestDeliver_ResolvedAddressesAreChecked(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, nil)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	resolver := staticResolver{
		"public.example.com": addrs("10.0.0.1"),
		"mixed.example.com":  addrs("93.184.215.14", "127.0.0.1"),
		"local.example.com":  addrs("127.0.0.1"),
	}
	target := func(host string) string { return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/hook" }

	t.Run("private answer refused", func(t *testing.T) {
		t.Parallel()
		ep := newEndpointWith(t, ClientConfig{Resolver: resolver}, EndpointConfig{URL: target("public.example.com")})
		de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
		require.Equal(t, "refused: 10.0.0.1 is a private address (delivery.allow_private_networks is false)", de.Reason)
		require.True(t, de.Retryable)
	})

	t.Run("one private answer refuses the name", func(t *testing.T) {
		t.Parallel()
		ep := newEndpointWith(t, ClientConfig{Resolver: resolver}, EndpointConfig{URL: target("mixed.example.com")})
		de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
		require.Equal(t, "refused: 127.0.0.1 is a loopback address (delivery.allow_private_networks is false)", de.Reason)
	})

	t.Run("unknown host", func(t *testing.T) {
		t.Parallel()
		ep := newEndpointWith(t, ClientConfig{Resolver: resolver}, EndpointConfig{URL: target("nowhere.example.com")})
		de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
		require.Equal(t, "no such host nowhere.example.com", de.Reason)
	})

	t.Run("allowed CIDR lets it through", func(t *testing.T) {
		t.Parallel()
		ep := newEndpointWith(t, ClientConfig{Resolver: resolver, AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/30")}},
			EndpointConfig{URL: target("local.example.com")})
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_allowed"}))
	})

	t.Run("allow private networks lets it through", func(t *testing.T) {
		t.Parallel()
		ep := newEndpointWith(t, ClientConfig{Resolver: resolver, AllowPrivateNetworks: true},
			EndpointConfig{URL: target("local.example.com")})
		require.NoError(t, ep.Deliver(context.Background(), &Message{ID: "msg_private_ok"}))
	})
}

func TestDeliver_MetadataRefusedEvenWhenPrivateAllowed(t *testing.T) {
	t.Parallel()
	ep := newEndpointWith(t, ClientConfig{AllowPrivateNetworks: true}, EndpointConfig{URL: "http://169.254.169.254/latest/"})
	de := requireDeliveryError(t, ep.Deliver(context.Background(), &Message{ID: "msg_1"}))
	require.Equal(t, "refused: 169.254.169.254 is a cloud metadata address (list it in delivery.allowed_cidrs to allow it)", de.Reason)
}

func TestProxyAddr(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"http://proxy:3128":     "proxy:3128",
		"http://proxy":          "proxy:80",
		"https://proxy":         "proxy:443",
		"socks5://10.0.0.1":     "10.0.0.1:1080",
		"http://[fd00::1]:8080": "[fd00::1]:8080",
	} {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		require.Equal(t, want, proxyAddr(u), raw)
	}
}

func TestGuardedDialer_ProxyIsDialledUnchecked(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, nil)
	d := &guardedDialer{resolver: staticResolver{}}
	_, err := d.DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
	var refused *AddressRefusedError
	require.True(t, errors.As(err, &refused), "a loopback dial is refused")

	d.proxies.Store(srv.Listener.Addr().String(), struct{}{})
	c, err := d.DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
	require.NoError(t, err, "the operator's proxy is reachable")
	require.NoError(t, c.Close())
}
