package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
)

// TestTracingExporters: "none" gives no provider (tracing off); otlp-http
// sends the spans to the collector at tracing.endpoint when the provider is
// stopped; otlp-grpc builds without a collector (it connects lazily).
func TestTracingExporters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tp, stop, err := newTracerProvider(ctx, config.Tracing{Exporter: config.TracingExporterNone, SampleRatio: 1})
	require.NoError(t, err)
	require.Nil(t, tp)
	require.NoError(t, stop(ctx))

	got := make(chan string, 4)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		got <- r.URL.Path + " " + r.Header.Get("Content-Type") + " " + string(body)
	}))
	t.Cleanup(collector.Close)
	tp, stop, err = newTracerProvider(ctx, config.Tracing{Exporter: config.TracingExporterOTLPHTTP, Endpoint: collector.URL + "/v1/traces", SampleRatio: 1})
	require.NoError(t, err)
	_, span := tp.Tracer("test").Start(ctx, "exported-span")
	span.End()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, stop(sctx))
	select {
	case req := <-got:
		require.Contains(t, req, "/v1/traces application/x-protobuf")
		require.Contains(t, req, "exported-span")
		require.Contains(t, req, "herald", "the service name")
	default:
		t.Fatal("the collector received no spans")
	}

	tp, stop, err = newTracerProvider(ctx, config.Tracing{Exporter: config.TracingExporterOTLPGRPC, Endpoint: "http://127.0.0.1:1", SampleRatio: 0.5})
	require.NoError(t, err)
	require.NotNil(t, tp)
	cctx, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	require.NoError(t, stop(cctx), "nothing to flush: it stops at once")
}
