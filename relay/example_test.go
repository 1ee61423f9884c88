package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// A relay delivers committed outbox messages to the endpoints subscribed to
// their topic, signed, and stops gracefully.
func ExampleRelay() {
	ctx := context.Background()
	t := &heraldtest.Standalone{}
	pool := heraldtest.PoolFor(t, heraldtest.URL(t)) // a database migrated with `herald migrate`

	received := make(chan string, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		received <- r.Header.Get("webhook-id") + " " + string(body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	// The receiver listens on loopback, which production configurations refuse.
	client := webhook.NewClient(webhook.ClientConfig{AllowPrivateNetworks: true})
	billing, err := client.Endpoint(webhook.EndpointConfig{
		Name:    "billing",
		URL:     receiver.URL,
		Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		Timeout: 5 * time.Second,
	})
	if err != nil {
		panic(err)
	}
	r, err := relay.New(pool, relay.Config{
		Endpoints: []relay.Endpoint{{Name: "billing", Topics: []string{"orders.*"}, Sender: billing, Timeout: 5 * time.Second}},
		Listen:    true, // woken by outbox.Enqueue's NOTIFY
	})
	if err != nil {
		panic(err)
	}
	if err := r.Start(ctx); err != nil {
		panic(err)
	}

	err = outbox.Enqueue(ctx, pool, outbox.Message{ID: "msg_order_42", Topic: "orders.created", Payload: json.RawMessage(`{"order_id": 42}`)})
	if err != nil {
		panic(err)
	}
	fmt.Println(<-received)

	if err := r.Stop(ctx); err != nil {
		panic(err)
	}
	fmt.Println("delivered:", r.Stats().Delivered)
	// Output:
	// msg_order_42 {"order_id": 42}
	// delivered: 1
}
