package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/webhook"
)

// TestEndpointFormatFlowsFromFileAndRows: an endpoint's format, from the
// file or from an outbox.endpoints row, reaches the requests herald run
// sends: CloudEvents binary headers for one, a structured envelope for the
// other.
func TestEndpointFormatFlowsFromFileAndRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	var mu sync.Mutex
	got := map[string]*http.Request{}
	bodies := map[string][]byte{}
	arrived := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body [4096]byte
		n, _ := r.Body.Read(body[:])
		mu.Lock()
		got[r.URL.Path], bodies[r.URL.Path] = r, body[:n]
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		arrived <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	require.NoError(t, ops.AddEndpoint(ctx, pool, ops.Endpoint{Endpoint: config.Endpoint{Name: "ce-row", URL: srv.URL + "/row",
		Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Format: webhook.FormatCloudEventsStructured, CloudEventsSource: "/shop"}}))
	var logs syncBuffer
	runSource(t, url, pool, &logs, func(c *config.Config) {
		ep := config.Endpoint{Name: "ce-file", URL: srv.URL + "/file", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			Format: webhook.FormatCloudEventsBinary}
		c.Endpoints = []config.Endpoint{ep.WithDefaults(c.Delivery)}
	})
	require.NoError(t, outbox.Enqueue(ctx, pool,
		outbox.Message{ID: "msg_file", Topic: "orders.created", Endpoint: "ce-file", Payload: json.RawMessage(`{"n":1}`)},
		outbox.Message{ID: "msg_row", Topic: "orders.paid", Endpoint: "ce-row", Payload: json.RawMessage(`{"n":2}`)}))
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("not delivered; logs:\n%s", logs.String())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	file := got["/file"].Header
	require.Equal(t, "orders.created", file.Get("Ce-Type"))
	require.Equal(t, "msg_file", file.Get("Ce-Id"))
	require.Equal(t, webhook.CloudEventsSourceDefault, file.Get("Ce-Source"))
	require.Equal(t, `{"n":1}`, string(bodies["/file"]))
	require.Equal(t, "application/cloudevents+json; charset=utf-8", got["/row"].Header.Get("Content-Type"))
	var event map[string]any
	require.NoError(t, json.Unmarshal(bodies["/row"], &event))
	require.Equal(t, "orders.paid", event["type"])
	require.Equal(t, "/shop", event["source"])
	require.Equal(t, map[string]any{"n": float64(2)}, event["data"])
}
