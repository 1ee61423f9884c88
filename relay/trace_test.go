package relay_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
)

// spanSignal is a span processor that records ended spans and signals each
// one, so that a test waits for a span instead of polling.
type spanSignal struct {
	*tracetest.SpanRecorder
	ended chan string // span names
}

func (s *spanSignal) OnEnd(sp sdktrace.ReadOnlySpan) {
	s.SpanRecorder.OnEnd(sp)
	s.ended <- sp.Name()
}

func newSpanSignal() (*spanSignal, *sdktrace.TracerProvider) {
	s := &spanSignal{SpanRecorder: tracetest.NewSpanRecorder(), ended: make(chan string, 64)}
	return s, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(s))
}

// await waits for a span of that name to end.
func (s *spanSignal) await(t *testing.T, name string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case n := <-s.ended:
			if n == name {
				return
			}
		case <-timeout:
			t.Fatalf("no span %q ended within 10s", name)
		}
	}
}

func (s *spanSignal) named(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, sp := range s.Ended() {
		if sp.Name() == name {
			out = append(out, sp)
		}
	}
	return out
}

// TestOneTraceFromProducerToReceiver: a span started by the producer,
// outbox.Enqueue, a real relay and an httptest receiver that continues the
// trace from the request's headers give one trace: producer -> delivery
// (one span per attempt) -> receiver, with the claim span linked to the
// producer's span, and no secret or payload in any attribute.
func TestOneTraceFromProducerToReceiver(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rec, tp := newSpanSignal()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := tp.Tracer("test")

	// The receiver fails the first attempt, so that there are two.
	attempts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		_, span := tracer.Start(ctx, "receiver", trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		attempts++ // one request at a time: the relay retries after the answer
		if attempts == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	startRelay(t, pool, relay.Config{
		Endpoints:      []relay.Endpoint{endpoint(t, "billing", srv.URL, "orders.*")},
		TracerProvider: tp,
	})

	ctx, producer := tracer.Start(context.Background(), "producer")
	require.NoError(t, outbox.Enqueue(ctx, pool, outbox.Message{ID: "msg_traced", Topic: "orders.created",
		Payload: json.RawMessage(`{"card":"4111-secret-payload"}`)}))
	producer.End()

	for range 2 {
		rec.await(t, "herald.deliver")
	}
	psc := producer.SpanContext()
	deliveries := rec.named("herald.deliver")
	receivers := rec.named("receiver")
	require.Len(t, deliveries, 2, "one delivery span per attempt")
	require.Len(t, receivers, 2)
	for i, d := range deliveries {
		require.Equal(t, psc.TraceID(), d.SpanContext().TraceID(), "the delivery continues the producer's trace")
		require.Equal(t, psc.SpanID(), d.Parent().SpanID(), "the delivery span is the producer span's child")
		require.True(t, d.Parent().IsRemote())
		r := receivers[i]
		require.Equal(t, psc.TraceID(), r.SpanContext().TraceID(), "the receiver continues the same trace")
		require.Equal(t, d.SpanContext().SpanID(), r.Parent().SpanID(), "the receiver's span is the delivery span's child")
		attrs := attribute.NewSet(d.Attributes()...)
		v, _ := attrs.Value("herald.message.id")
		require.Equal(t, "msg_traced", v.AsString())
		v, _ = attrs.Value("herald.endpoint")
		require.Equal(t, "billing", v.AsString())
		v, _ = attrs.Value("herald.attempt")
		require.Equal(t, int64(i+1), v.AsInt64())
	}
	first := attribute.NewSet(deliveries[0].Attributes()...)
	status, _ := first.Value("http.response.status_code")
	require.Equal(t, int64(503), status.AsInt64())
	second := attribute.NewSet(deliveries[1].Attributes()...)
	result, _ := second.Value("herald.result")
	require.Equal(t, "delivered", result.AsString())

	var linked bool
	for _, c := range rec.named("herald.claim") {
		require.False(t, c.Parent().IsValid(), "a claim is no message's child")
		for _, l := range c.Links() {
			linked = linked || l.SpanContext.SpanID() == psc.SpanID()
		}
	}
	require.True(t, linked, "a claim span links to the producer's span")

	for _, sp := range rec.Ended() {
		for _, kv := range sp.Attributes() {
			v := kv.Value.Emit()
			require.NotContains(t, v, strings.TrimPrefix(testSecret, "whsec_"), "span %s attribute %s", sp.Name(), kv.Key)
			require.NotContains(t, v, "secret-payload", "span %s attribute %s", sp.Name(), kv.Key)
		}
		require.NotContains(t, sp.Status().Description, "secret")
	}
}

// TestTracingOffPassesTheProducersTraceparent: without a tracer provider
// the relay adds no span, and the receiver gets the producer's own
// traceparent, so its handler still continues the producer's trace.
func TestTracingOffPassesTheProducersTraceparent(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "billing", rc.srv.URL, "*")}})
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "producer")
	require.NoError(t, outbox.Enqueue(ctx, pool, outbox.Message{Topic: "t", Payload: json.RawMessage(`{}`)}))
	span.End()
	eventually(t, 5*time.Second, func() bool { return len(rc.requests()) == 1 }, "delivered")
	sc := span.SpanContext()
	require.Equal(t, "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01", rc.requests()[0].hdr.Get("traceparent"))
}
