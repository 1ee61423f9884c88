package admin

import (
	"context"
	"net/http"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/relay"
)

// route is one operation of the API.
type route struct {
	method string
	// path is a net/http pattern without a method, as in openapi.json.
	path string
	// write routes need a write token.
	write bool
	// handle returns the status and the value to send as JSON (nil: no
	// body), or an error for errorResponse. The adapters of adapt.go make
	// one from an ops function.
	handle handler
}

// request is what a handler gets: the HTTP request, its context (bounded
// by RequestTimeout) and the database of its source.
type request struct {
	*http.Request
	ctx context.Context
	db  ops.DB
}

const (
	read  = false
	write = true
)

// routes is every route of the API; a test keeps it and openapi.json
// equal. A route over an ops function is one line (see adapt.go).
func routes(a *api) []route {
	return []route{
		{"GET", "/v1/queue", read, noInput(ops.GetQueueStatus)},
		// Always 200: what needs attention is in the body
		// (needs_attention), so that a failing probe means the API or the
		// database is down, not that an endpoint is.
		{"GET", "/v1/status", read, byQuery(a.getStatus)},

		{"GET", "/v1/messages", read, byQuery(ops.ListMessages)},
		{"GET", "/v1/messages/{id}", read, byPath("id", ops.GetMessage)},
		{"POST", "/v1/messages/{id}/resend", write, byBody(ops.ResendMessage, ops.ResendMessageDryRun, "id")},

		{"GET", "/v1/dead", read, listDead},
		{"GET", "/v1/dead/count", read, countDead},
		{"POST", "/v1/dead/replay", write, replayDead},
		{"POST", "/v1/dead/purge", write, purgeDead},

		{"GET", "/v1/endpoints", read, listEndpoints},
		{"POST", "/v1/endpoints", write, a.addEndpoint},
		{"GET", "/v1/endpoints/{name}", read, getEndpoint},
		{"PATCH", "/v1/endpoints/{name}", write, a.updateEndpoint},
		{"DELETE", "/v1/endpoints/{name}", write, removeEndpoint},
		{"POST", "/v1/endpoints/{name}/enable", write, enableEndpoint},
		{"POST", "/v1/endpoints/{name}/disable", write, disableEndpoint},
	}
}

// getStatus is ops.GetStatus with the history.attempts of the
// configuration served: the success rates are computed only when every
// attempt is logged (the relays' setting, which should be the same).
func (a *api) getStatus(ctx context.Context, db ops.DB, opts ops.StatusOptions) (ops.Status, error) {
	opts.HistoryAttempts = relay.AttemptLog(a.herald.History.Attempts)
	return ops.GetStatus(ctx, db, opts)
}
