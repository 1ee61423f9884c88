package faultproxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// echoServer echoes each line back until the connection closes.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) (string, error) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	s, err := r.ReadString('\n')
	return strings.TrimSpace(s), err
}

// TestProxyFaults: bytes flow, latency delays them, a black hole holds them
// until it closes, and drop cuts open connections.
func TestProxyFaults(t *testing.T) {
	t.Parallel()
	p, err := Start(echoServer(t))
	require.NoError(t, err)
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	got, err := roundTrip(t, c, r, "hello")
	require.NoError(t, err)
	require.Equal(t, "hello", got)

	p.SetLatency(100 * time.Millisecond)
	start := time.Now()
	got, err = roundTrip(t, c, r, "slow")
	require.NoError(t, err)
	require.Equal(t, "slow", got)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "latency on both directions")
	p.SetLatency(0)

	p.SetBlackHole(true)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(c, "held\n")
	require.NoError(t, err)
	released := time.Now().Add(300 * time.Millisecond)
	time.AfterFunc(300*time.Millisecond, func() { p.SetBlackHole(false) })
	s, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "held\n", s)
	require.False(t, time.Now().Before(released), "nothing passes while the hole is open")

	require.Equal(t, 1, p.Drop())
	_, err = roundTrip(t, c, r, "after drop")
	require.Error(t, err, "the connection was cut")
}
