package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// valueSender is a Sender whose dynamic type cannot be compared with ==
// (it holds a slice): a user's Sender may well be one.
type valueSender struct{ tags []string }

func (valueSender) Send(context.Context, *webhook.Message) (webhook.Result, error) {
	return webhook.Result{Status: 200}, nil
}

// TestSendersThatCannotBeComparedAreAccepted: SetEndpoints compared Senders
// with ==, which panics for a Sender of a type that is not comparable.
func TestSendersThatCannotBeComparedAreAccepted(t *testing.T) {
	t.Parallel()
	r := startRelay(t, heraldtest.Pool(t), relay.Config{Endpoints: []relay.Endpoint{{Name: "v", Topics: []string{"*"}, Sender: valueSender{tags: []string{"a"}}, Timeout: time.Second}}})
	require.NotPanics(t, func() {
		require.NoError(t, r.SetEndpoints([]relay.Endpoint{{Name: "v", Topics: []string{"*"}, Sender: valueSender{tags: []string{"b"}}, Timeout: time.Second}}))
		require.NoError(t, r.SetEndpoints([]relay.Endpoint{{Name: "w", Topics: []string{"*"}, Sender: valueSender{}, Timeout: time.Second}}))
	})
}
