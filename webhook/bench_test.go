package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchBody is a typical event payload, about 500 bytes.
var benchBody = []byte(`{"type":"order.created","data":{"id":"ord_01J5ZX4Q2F9Y6V7W8X9Y0Z1A2B","customer":"cus_8765",` +
	`"items":[{"sku":"A-1","qty":2,"price":1999},{"sku":"B-7","qty":1,"price":4999}],"total":8997,"currency":"EUR",` +
	`"shipping":{"name":"Ada Lovelace","line1":"12 Analytical Engine Way","city":"London","postcode":"N1 9GU","country":"GB"},` +
	`"created_at":"2026-01-02T03:04:05Z","metadata":{"source":"web","campaign":"spring"}}}` + strings.Repeat(" ", 40))

func benchEndpoint(b *testing.B, secrets int) *Endpoint {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	cfg := EndpointConfig{Name: "bench", URL: srv.URL + "/hooks", Headers: map[string]string{"Authorization": "Bearer token"}}
	for i := range secrets {
		cfg.Secrets = append(cfg.Secrets, testSecret(byte('a'+i)))
	}
	ep, err := NewClient(ClientConfig{AllowPrivateNetworks: true}).Endpoint(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ep.Close)
	return ep
}

// BenchmarkDeliver measures one delivery against a local server, client and
// server in the same process (so the figures include the server's share).
func BenchmarkDeliver(b *testing.B) {
	ep := benchEndpoint(b, 1)
	msg := &Message{ID: "msg_01J5ZX4Q2F9Y6V7W8X9Y0Z1A2B", Body: benchBody, Headers: []Header{{Name: "X-Tenant", Value: "acme"}}}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if err := ep.Deliver(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliverParallel is the relay's shape: many deliveries in flight
// to one endpoint.
func BenchmarkDeliverParallel(b *testing.B) {
	ep := benchEndpoint(b, 1)
	msg := &Message{ID: "msg_01J5ZX4Q2F9Y6V7W8X9Y0Z1A2B", Body: benchBody}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := ep.Deliver(ctx, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkSign(b *testing.B) {
	signer, err := NewSigner(testSecret('a'))
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		dst = signer.AppendSignature(dst[:0], "msg_01J5ZX4Q2F9Y6V7W8X9Y0Z1A2B", 1767323045, benchBody)
	}
}
