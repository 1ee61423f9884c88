package webhook

import (
	"runtime"
	"strconv"
	"testing"
)

// heapPerEndpoint is the heap n plain-http endpoints keep, per endpoint.
func heapPerEndpoint(t *testing.T, n int) uint64 {
	t.Helper()
	c := NewClient(ClientConfig{AllowPrivateNetworks: true})
	eps := make([]*Endpoint, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range eps {
		ep, err := c.Endpoint(EndpointConfig{Name: "customer-" + strconv.Itoa(i), URL: "http://127.0.0.1:9/hook?customer=" + strconv.Itoa(i), Secrets: []string{testSecret(1)}})
		if err != nil {
			t.Fatal(err)
		}
		eps[i] = ep
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(eps)
	return (after.HeapAlloc - before.HeapAlloc) / uint64(n)
}

// A plain-http endpoint sends over its own lean pool and never uses
// net/http's Transport: it must not carry one. A relay keeps thousands of
// endpoints, and every byte of each is multiplied by GOGC in its RSS. Not
// parallel: it reads the process's heap.
func TestPlainHTTPEndpointHeap(t *testing.T) {
	per := heapPerEndpoint(t, 2000)
	t.Logf("heap per plain-http endpoint: %d B", per)
	if per > 2048 {
		t.Errorf("heap per plain-http endpoint: %d B, want at most 2048", per)
	}
}
