package relay

import (
	"context"
	"net/textproto"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/herald-relay/herald/webhook"
)

// TracerName is the instrumentation scope of the relay's spans.
const TracerName = "github.com/herald-relay/herald/relay"

// Span attribute keys. They never hold a payload, a header value or a
// secret: only ids, names, counts and the HTTP status.
const (
	attrMessageID = attribute.Key("herald.message.id")
	attrEndpoint  = attribute.Key("herald.endpoint")
	attrAttempt   = attribute.Key("herald.attempt")
	attrResult    = attribute.Key("herald.result")
	attrLane      = attribute.Key("herald.lane")
	attrTopic     = attribute.Key("messaging.destination.name")
	attrStatus    = attribute.Key("http.response.status_code")
	attrHot       = attribute.Key("herald.claim.hot")
	attrRetry     = attribute.Key("herald.claim.retry")
)

// Canonical names of the W3C trace context headers, as a message's headers
// hold them (see webhook.ParseHeaders).
var (
	headerTraceparent = textproto.CanonicalMIMEHeaderKey("traceparent")
	headerTracestate  = textproto.CanonicalMIMEHeaderKey("tracestate")
)

// newTracer returns the relay's tracer, or nil when tp traces nothing: the
// relay then skips every tracing step, so that tracing off costs no
// allocation on the delivery path (a no-op tracer would still allocate a
// context per attempt).
func newTracer(tp trace.TracerProvider) trace.Tracer {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return nil
	}
	return tp.Tracer(TracerName)
}

// traceClaim records one claim as a span of its own, from start to now,
// linked to (not a child of) the trace of every message it took: a claim
// serves many producers' traces at once. It also keeps each job's trace
// context for its delivery spans.
func (r *Relay) traceClaim(ctx context.Context, start time.Time, jobs []*job, hotGot, retryGot int) {
	if r.tracer == nil {
		return
	}
	var links []trace.Link
	for _, j := range jobs {
		sc := producerContext(j.msg.Headers)
		if !sc.IsValid() {
			continue
		}
		j.producer = &sc
		links = append(links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attrMessageID.String(j.msg.ID)}})
	}
	_, span := r.tracer.Start(ctx, "herald.claim", trace.WithTimestamp(start), trace.WithLinks(links...),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attrHot.Int(hotGot), attrRetry.Int(retryGot)))
	span.End()
}

// producerContext is the span context stored with a message by
// outbox.Enqueue or by its producer (traceparent, tracestate).
func producerContext(hs []webhook.Header) trace.SpanContext {
	var c headerCarrier
	for _, h := range hs {
		switch h.Name {
		case headerTraceparent:
			c.parent = h.Value
		case headerTracestate:
			c.state = h.Value
		}
	}
	if c.parent == "" {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), &c))
}

// startDelivery starts the span of one attempt of p, a child of the
// producer's span when the message has one, and returns the context and
// message to deliver: the message's traceparent and tracestate are replaced
// by the delivery span's, so that the receiver's handler continues the
// trace. With tracing off it returns ctx and the job's message untouched,
// and a nil span.
func (r *Relay) startDelivery(ctx context.Context, p *pair) (context.Context, *webhook.Message, trace.Span) {
	j := p.job
	if r.tracer == nil {
		return ctx, &j.msg, nil
	}
	parent := ctx
	if j.producer != nil {
		parent = trace.ContextWithRemoteSpanContext(ctx, *j.producer)
	}
	ctx, span := r.tracer.Start(parent, "herald.deliver", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrMessageID.String(j.msg.ID), attrEndpoint.String(p.ep.Name),
			attrAttempt.Int(j.attempts), attrTopic.String(j.topic), attrLane.String(j.lane.String())))
	var c headerCarrier
	propagation.TraceContext{}.Inject(ctx, &c)
	if c.parent == "" {
		return ctx, &j.msg, span
	}
	// A copy: the job's message is shared by the attempts of its other
	// endpoints, running concurrently.
	msg := j.msg
	msg.Headers = make([]webhook.Header, 0, len(j.msg.Headers)+2)
	for _, h := range j.msg.Headers {
		if h.Name != headerTraceparent && h.Name != headerTracestate {
			msg.Headers = append(msg.Headers, h)
		}
	}
	msg.Headers = append(msg.Headers, webhook.Header{Name: headerTraceparent, Value: c.parent})
	if c.state != "" {
		msg.Headers = append(msg.Headers, webhook.Header{Name: headerTracestate, Value: c.state})
	}
	return ctx, &msg, span
}

// endDelivery ends an attempt's span with its outcome. The status
// description is the attempt's error as recorded in last_error, which
// holds no secret (webhook redacts URLs, and never puts a secret in an
// error).
func endDelivery(span trace.Span, p *pair) {
	if span == nil {
		return
	}
	if p.status != 0 {
		span.SetAttributes(attrStatus.Int(p.status))
	}
	switch p.result {
	case resultOK:
		span.SetAttributes(attrResult.String("delivered"))
	case resultDead:
		span.SetAttributes(attrResult.String("dead"))
		span.SetStatus(codes.Error, p.errText)
	case resultReleased: // begun, then given back: the relay lost its hold on the row
		span.SetAttributes(attrResult.String("released"))
		span.SetStatus(codes.Error, p.errText)
	default:
		span.SetAttributes(attrResult.String("retry"))
		span.SetStatus(codes.Error, p.errText)
	}
	span.End()
}

// headerCarrier carries the two W3C headers in and out of the propagator.
type headerCarrier struct{ parent, state string }

func (c *headerCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.parent
	case "tracestate":
		return c.state
	}
	return ""
}

func (c *headerCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.parent = value
	case "tracestate":
		c.state = value
	}
}

func (c *headerCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }
