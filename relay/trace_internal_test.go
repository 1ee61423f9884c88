package relay

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/herald-relay/herald/webhook"
)

func tracedPair() *pair {
	j := &job{msg: webhook.Message{ID: "msg_1", Body: []byte(`{}`), Headers: []webhook.Header{
		{Name: "Traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, {Name: "X-Tenant", Value: "acme"},
	}}, topic: "t", attempts: 1}
	sc := producerContext(j.msg.Headers)
	j.producer = &sc
	return &pair{job: j, ep: &endpointState{Endpoint: &Endpoint{Name: "billing"}}}
}

// TestTracingOffAllocatesNothing: with no tracer provider, or a no-op one,
// the delivery path's tracing steps allocate nothing and send the message
// as claimed.
func TestTracingOffAllocatesNothing(t *testing.T) {
	for _, tp := range []any{nil, noop.NewTracerProvider()} {
		r := &Relay{}
		if tp != nil {
			r.tracer = newTracer(tp.(noop.TracerProvider))
		}
		p := tracedPair()
		ctx := context.Background()
		allocs := testing.AllocsPerRun(100, func() {
			_, msg, span := r.startDelivery(ctx, p)
			endDelivery(span, p)
			if msg != &p.job.msg {
				t.Fatal("the message was copied")
			}
		})
		require.Zero(t, allocs, "provider %T", tp)
	}
}

// BenchmarkDeliverySpan is the cost per attempt of the tracing steps,
// off and on (recording every span, exported nowhere).
func BenchmarkDeliverySpan(b *testing.B) {
	for _, c := range []struct {
		name   string
		tracer bool
	}{{"off", false}, {"on", true}} {
		b.Run(c.name, func(b *testing.B) {
			r := &Relay{}
			if c.tracer {
				tp := sdktrace.NewTracerProvider()
				defer tp.Shutdown(context.Background()) //nolint:errcheck
				r.tracer = newTracer(tp)
			}
			p := tracedPair()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, _, span := r.startDelivery(ctx, p)
				endDelivery(span, p)
			}
		})
	}
}
