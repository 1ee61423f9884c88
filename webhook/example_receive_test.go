package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/herald-relay/herald/webhook"
)

const exampleSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// signedRequest builds a request as Herald sends it.
func signedRequest(target, id string, body []byte) *http.Request {
	signer, err := webhook.NewSigner(exampleSecret)
	if err != nil {
		panic(err)
	}
	now := time.Now().Unix()
	r, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	r.Header.Set(webhook.HeaderID, id)
	r.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(now, 10))
	r.Header.Set(webhook.HeaderSignature, signer.Sign(id, now, body))
	return r
}

func ExampleVerifier() {
	v, err := webhook.NewVerifier(exampleSecret)
	if err != nil {
		panic(err)
	}

	r := signedRequest("http://receiver.example/webhooks", "msg_1", []byte(`{"order_id":42}`))
	body, err := v.Verify(r)
	fmt.Printf("verified %s, err=%v\n", body, err)

	// The same headers on another body are rejected.
	r = signedRequest("http://receiver.example/webhooks", "msg_1", []byte(`{"order_id":42}`))
	r.Body = http.NoBody
	r.ContentLength = 0
	_, err = v.Verify(r)
	fmt.Println("tampered:", errors.Is(err, webhook.ErrInvalidSignature))

	// Output:
	// verified {"order_id":42}, err=<nil>
	// tampered: true
}

func ExampleHandler() {
	v, err := webhook.NewVerifier(exampleSecret)
	if err != nil {
		panic(err)
	}
	// With PostgreSQL, use webhook.NewPostgresStore(pool, "") and apply the
	// message with the pgx.Tx that the handler receives.
	store := webhook.NewMemoryStore()
	h := webhook.NewHandler(v, store, func(ctx context.Context, tx *webhook.MemoryTx, msg *webhook.Received) error {
		fmt.Printf("processing %s: %s\n", msg.ID, msg.Body)
		return nil
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	for range 2 { // Herald delivers at least once: here, twice.
		resp, err := http.DefaultClient.Do(signedRequest(srv.URL, "msg_1", []byte(`{"order_id":42}`)))
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode, "duplicate:", resp.Header.Get(webhook.HeaderDuplicate) == "true")
	}

	// Output:
	// processing msg_1: {"order_id":42}
	// 204 duplicate: false
	// 200 duplicate: true
}
