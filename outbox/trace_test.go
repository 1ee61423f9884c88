package outbox_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/outbox/outboxtest"
)

// TestEnqueueStoresTraceContext: a message enqueued inside a span carries
// that span's W3C traceparent (and tracestate) in its headers, which the
// relay continues; one without a span, or whose producer set traceparent
// itself, is left as it was.
func TestEnqueueStoresTraceContext(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "producer")
	defer span.End()
	ts, err := trace.ParseTraceState("vendor=abc")
	require.NoError(t, err)
	sc := span.SpanContext().WithTraceState(ts)
	ctx = trace.ContextWithSpanContext(ctx, sc)

	own := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	require.NoError(t, outbox.Enqueue(ctx, pool,
		outbox.Message{Topic: "traced", Key: "a", Payload: json.RawMessage(`1`), Headers: map[string]string{"X-Tenant": "acme"}},
		outbox.Message{Topic: "traced", Key: "b", Payload: json.RawMessage(`2`), Headers: map[string]string{"TraceParent": own}},
	))
	require.NoError(t, outbox.Enqueue(context.Background(), pool, outbox.Message{Topic: "traced", Key: "c", Payload: json.RawMessage(`3`)}))

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	got := map[string]map[string]string{}
	for _, e := range outboxtest.ListEnqueuedTx(ctx, t, tx, "traced") {
		got[e.Key] = e.Headers
	}
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	require.Equal(t, map[string]string{"X-Tenant": "acme", "traceparent": want, "tracestate": "vendor=abc"}, got["a"])
	require.Equal(t, map[string]string{"TraceParent": own}, got["b"], "the producer's own traceparent wins")
	require.Empty(t, got["c"], "no span, no trace headers")
}
