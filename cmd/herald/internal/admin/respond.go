package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

// apiError is the body of every error: what is wrong and, for a 400, the
// query parameter or body field at fault.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// inputError is a request the API refuses before calling ops.
type inputError struct {
	status int // 400 unless set
	field  string
	msg    string
}

func (e *inputError) Error() string { return e.field + ": " + e.msg }

func badRequest(field, msg string) error { return &inputError{field: field, msg: msg} }

// statusOf maps the errors of ops that a client can act on to their
// status; their messages name what is wrong and never a secret.
var statusOf = []struct {
	err    error
	status int
}{
	{ops.ErrNotFound, http.StatusNotFound},
	{ops.ErrExists, http.StatusConflict},
	{ops.ErrSourceConflict, http.StatusConflict},
	{ops.ErrPurgeBusy, http.StatusConflict},
	{ops.ErrNoMessage, http.StatusNotFound},
	{ops.ErrStillPending, http.StatusConflict},
}

// errorResponse maps an error of ops, or of reading the request, to its
// status and body. A 500's cause goes to the log only: a database error
// is of no use to the client and might quote what it was sent.
func (a *api) errorResponse(err error, rt route) (int, apiError) {
	var (
		ie  *inputError
		fe  *ops.FilterError
		cer *config.Error
		re  ops.RowError
	)
	switch {
	case errors.As(err, &ie):
		status := ie.status
		if status == 0 {
			status = http.StatusBadRequest
		}
		return status, apiError{Error: ie.Error(), Field: ie.field}
	case errors.As(err, &fe):
		return http.StatusBadRequest, apiError{Error: fe.Error(), Field: fe.Field}
	case errors.As(err, &cer):
		// *ops.InvalidEndpointError: every problem in the message, the
		// first one's field named.
		field := ""
		if len(cer.Problems) > 0 {
			field = cer.Problems[0].Field
		}
		return http.StatusBadRequest, apiError{Error: err.Error(), Field: field}
	case errors.As(err, &re):
		// Names the endpoint and what is wrong, never a header value.
		return http.StatusConflict, apiError{Error: re.Error() + " (fix the row with SQL)"}
	case errors.Is(err, context.DeadlineExceeded):
		a.log.Error().Err(err).Str("route", rt.path).Msg("admin request timed out")
		return http.StatusServiceUnavailable, apiError{Error: "the request took too long; see the server's log"}
	}
	for _, se := range statusOf {
		if errors.Is(err, se.err) {
			return se.status, apiError{Error: err.Error()}
		}
	}
	a.log.Error().Err(err).Str("route", rt.path).Msg("admin request failed")
	return http.StatusInternalServerError, apiError{Error: "internal error; see the server's log"}
}

// writeJSON writes v as the response; nil writes no body (204).
func writeJSON(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client is gone, or the value cannot fail
}

// decodeBody reads r's body as JSON into v, refusing unknown fields and
// trailing data. An empty body leaves v as it is when optional.
func decodeBody(r *http.Request, v any, optional bool) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	return decodeJSON(dec, v, optional)
}

// decodeJSON is decodeBody's reading of one JSON value from dec.
func decodeJSON(dec *json.Decoder, v any, optional bool) error {
	err := dec.Decode(v)
	if err == nil {
		if dec.More() || dec.Decode(&struct{}{}) != io.EOF {
			return badRequest("body", "must hold one JSON object")
		}
		return nil
	}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		big *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF) && optional:
		return nil
	case errors.Is(err, io.EOF):
		return badRequest("body", "required: a JSON object")
	case errors.As(err, &big):
		return &inputError{status: http.StatusRequestEntityTooLarge, field: "body", msg: fmt.Sprintf("must be at most %d bytes", big.Limit)}
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("body", "invalid JSON")
	case errors.As(err, &typ):
		// Names the field and the JSON type received, never the value.
		// encoding/json names a field of an embedded struct with the
		// struct's Go name first (endpointIn embeds ops.EndpointChange);
		// the client knows only the JSON names.
		field := strings.TrimPrefix(typ.Field, "EndpointChange.")
		if field == "" {
			return badRequest("body", "must be a JSON object")
		}
		return badRequest(field, "must be "+jsonType(typ.Type.String())+", not a JSON "+typ.Value)
	}
	if quoted, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		// encoding/json quotes the key with %q.
		if name, uerr := strconv.Unquote(quoted); uerr == nil && name != "" {
			return badRequest(name, "unknown field")
		}
		return badRequest("body", "unknown field "+quoted)
	}
	return badRequest("body", "cannot be read as JSON")
}

// jsonType names a Go type as the JSON a client must send.
func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["):
		return "an object"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "a boolean"
	case goType == "string", goType == "config.Secret":
		return "a string"
	}
	return "a " + goType
}
