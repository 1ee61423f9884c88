package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/herald-relay/herald/webhook"
)

func ExampleEndpoint_Deliver() {
	// A receiver that accepts the first message and is gone afterwards.
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Printf("received %s %s\n", r.Header.Get("webhook-id"), body)
		if calls++; calls > 1 {
			w.WriteHeader(http.StatusGone)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	// The test server listens on 127.0.0.1, which delivery refuses by default.
	client := webhook.NewClient(webhook.ClientConfig{AllowPrivateNetworks: true})
	ep, err := client.Endpoint(webhook.EndpointConfig{
		Name:    "orders",
		URL:     srv.URL,
		Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
	})
	if err != nil {
		panic(err)
	}
	defer ep.Close()

	err = ep.Deliver(context.Background(), &webhook.Message{ID: "msg_1", Body: []byte(`{"order":42}`)})
	fmt.Println("error:", err)

	err = ep.Deliver(context.Background(), &webhook.Message{ID: "msg_2", Body: []byte(`{"order":43}`)})
	var de *webhook.DeliveryError
	if errors.As(err, &de) {
		fmt.Printf("error: %v (retryable=%t gone=%t)\n", de, de.Retryable, de.Gone)
	}
	// Output:
	// received msg_1 {"order":42}
	// error: <nil>
	// received msg_2 {"order":43}
	// error: status 410 (retryable=false gone=true)
}
