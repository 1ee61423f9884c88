package main

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/webhook"
)

// newTracerProvider builds the tracer provider tracing.* asks for, and the
// function that flushes and stops it. With exporter "none" it returns nil:
// the relay then skips tracing altogether. The exporters connect lazily:
// an unreachable collector costs dropped spans, never a delivery.
func newTracerProvider(ctx context.Context, c config.Tracing) (trace.TracerProvider, func(context.Context) error, error) {
	var exp sdktrace.SpanExporter
	var err error
	switch c.Exporter {
	case config.TracingExporterOTLPGRPC:
		var opts []otlptracegrpc.Option
		if c.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(c.Endpoint))
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	case config.TracingExporterOTLPHTTP:
		var opts []otlptracehttp.Option
		if c.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(c.Endpoint))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	default:
		return nil, func(context.Context) error { return nil }, nil
	}
	if err != nil {
		// Not err's text alone: it may quote the endpoint, which may hold
		// credentials; the key names what to fix.
		return nil, nil, fmt.Errorf("tracing.exporter %s: %w", c.Exporter, err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("herald"), semconv.ServiceVersion(webhook.Version))),
	)
	return tp, tp.Shutdown, nil
}
