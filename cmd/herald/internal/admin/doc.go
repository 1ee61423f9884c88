// Package admin is the admin HTTP API of herald: the operations of the
// herald dead, herald endpoints, herald messages and herald status
// commands, and the queue's depth, served
// as JSON by `herald run` (or `herald admin serve`) when admin.listen is
// set. It is a face over package ops, like the CLI: every route calls the
// function the matching command calls, and adds only HTTP.
//
// # Routes
//
// The route table (routes.go) is the one list of what the API serves; each
// route names its method, path pattern (net/http's, such as
// /v1/endpoints/{name}), access and handler. openapi.json documents each
// one, and a test keeps the two equal. Adding a route over an ops function
// is a line in the table, made with an adapter of adapt.go (noInput,
// byPath, byQuery, byBody), and its entry in openapi.json; a new error of
// ops that a client can act on is a line of statusOf (respond.go).
//
// # Authentication
//
// Every /v1 route needs "Authorization: Bearer <token>" with one of the
// configured tokens (admin.tokens), compared in constant time. A read token
// may call the GET routes; a write token every route. A missing or unknown
// token is 401 with WWW-Authenticate: Bearer; a read token on a write route
// 403. /openapi.json needs none: it describes the API and holds no data.
//
// # Errors
//
// Every error is {"error": "...", "field": "..."}: 400 names the query
// parameter or body field at fault, 404 an unknown route, endpoint or
// message, 405 a method a path does not take (with Allow), 409 a conflict
// (an endpoint that exists or belongs to the configuration file, a purge
// already running, a resend whose id is still pending), 413 a body over
// MaxBodyBytes, and 500 anything else, whose cause goes to the log and not
// to the client.
//
// GET /v1/status answers 200 whatever the status: needs_attention says
// whether something needs an operator, so that an error status always
// means the API or its database failed.
//
// # Secrets
//
// Endpoints are returned as ops.EndpointView: no signing secret, no header
// value, no credentials in the URL. Tokens, secrets and header values are
// never logged; log lines name the token by its configured name.
package admin
