package relay_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// TestCloudEventsCarryTopicAndTime: the relay gives a CloudEvents endpoint
// the message's topic as the event's type and its creation time as the
// event's time.
func TestCloudEventsCarryTopicAndTime(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	c := webhook.NewClient(webhook.ClientConfig{AllowPrivateNetworks: true})
	ep, err := c.Endpoint(webhook.EndpointConfig{Name: "ce", URL: rc.srv.URL, Timeout: time.Second, Format: webhook.FormatCloudEventsStructured})
	require.NoError(t, err)
	t.Cleanup(ep.Close)
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{{Name: "ce", Topics: []string{"*"}, Sender: ep, Timeout: time.Second}}})
	before := time.Now().Add(-time.Second)
	enqueue(t, pool, outbox.Message{ID: "msg_ce", Topic: "orders.created", Payload: json.RawMessage(`{"n": 1}`)})
	eventually(t, 5*time.Second, func() bool { return len(rc.requests()) == 1 }, "delivered")
	var event struct {
		ID, Type, Source string
		Time             time.Time
		Data             json.RawMessage
	}
	require.NoError(t, json.Unmarshal(rc.requests()[0].body, &event))
	require.Equal(t, "msg_ce", event.ID)
	require.Equal(t, "orders.created", event.Type)
	require.Equal(t, webhook.CloudEventsSourceDefault, event.Source)
	require.WithinRange(t, event.Time, before, time.Now())
	require.JSONEq(t, `{"n": 1}`, string(event.Data))
}
