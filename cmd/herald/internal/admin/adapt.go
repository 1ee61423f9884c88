package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

// Adapters turn an ops function into a route's handler, so that a route
// over a function of the usual shapes is one line of the table:
//
//	{"GET", "/v1/queue", read, noInput(ops.GetQueueStatus)},
//	{"GET", "/v1/messages", read, byQuery(ops.ListMessages)},
//	{"GET", "/v1/messages/{id}", read, byPath("id", ops.GetMessage)},
//	{"POST", "/v1/messages/{id}/resend", write, byBody(ops.ResendMessage, ops.ResendMessageDryRun, "id")},
//
// Each answers 200 with the function's result as JSON; its errors go
// through errorResponse.

// handler is what a route calls.
type handler = func(*request) (int, any, error)

// noInput serves f(ctx, db); any query parameter but source is a 400.
func noInput[T any](f func(context.Context, ops.DB) (T, error)) handler {
	return func(r *request) (int, any, error) {
		if err := onlyQuery(r, "source"); err != nil {
			return 0, nil, err
		}
		v, err := f(r.ctx, r.db)
		return http.StatusOK, v, err
	}
}

// byPath serves f(ctx, db, the path parameter param).
func byPath[T any](param string, f func(context.Context, ops.DB, string) (T, error)) handler {
	return func(r *request) (int, any, error) {
		if err := onlyQuery(r, "source"); err != nil {
			return 0, nil, err
		}
		v, err := f(r.ctx, r.db, r.PathValue(param))
		return http.StatusOK, v, err
	}
}

// byQuery serves f(ctx, db, q), q's fields read from the query parameters
// of their json names (see queryInto).
func byQuery[Q, T any](f func(context.Context, ops.DB, Q) (T, error)) handler {
	return func(r *request) (int, any, error) {
		var q Q
		if err := queryInto(r, &q); err != nil {
			return 0, nil, err
		}
		v, err := f(r.ctx, r.db, q)
		return http.StatusOK, v, err
	}
}

// byBody serves f(ctx, db, b), b read from the JSON body, unknown fields
// refused. The path parameters named in fromPath fill the fields of b
// with those json names (a body may not set them). When dryRun is not nil
// the body may hold "dry_run": true, which calls dryRun instead.
func byBody[B, T any](f, dryRun func(context.Context, ops.DB, B) (T, error), fromPath ...string) handler {
	return func(r *request) (int, any, error) {
		if err := onlyQuery(r, "source"); err != nil {
			return 0, nil, err
		}
		var fields map[string]json.RawMessage
		if err := decodeBody(r.Request, &fields, true); err != nil {
			return 0, nil, err
		}
		if fields == nil { // no body, or null
			fields = map[string]json.RawMessage{}
		}
		call := f
		if raw, ok := fields["dry_run"]; ok && dryRun != nil {
			var dry bool
			if err := json.Unmarshal(raw, &dry); err != nil {
				return 0, nil, badRequest("dry_run", "must be a boolean")
			}
			if dry {
				call = dryRun
			}
			delete(fields, "dry_run")
		}
		for _, p := range fromPath {
			if _, ok := fields[p]; ok {
				return 0, nil, badRequest(p, "is given by the path, not the body")
			}
			raw, err := json.Marshal(r.PathValue(p))
			if err != nil {
				return 0, nil, err
			}
			fields[p] = raw
		}
		var b B
		raw, err := json.Marshal(fields)
		if err != nil {
			return 0, nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := decodeJSON(dec, &b, false); err != nil {
			return 0, nil, err
		}
		v, err := call(r.ctx, r.db, b)
		return http.StatusOK, v, err
	}
}

// queryInto sets the fields of *q (a struct) from the query parameters
// named like their json tags: strings, whole numbers, booleans, durations
// ("90m") and times (RFC 3339, or a duration before now: "24h"). A
// parameter that is not a field of q, other than source, is a 400 naming
// it, and so is a value of the wrong kind.
func queryInto(r *request, q any) error {
	v := reflect.ValueOf(q).Elem()
	fields := map[string]reflect.Value{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = v.Field(i)
	}
	for name, values := range r.URL.Query() {
		if name == "source" {
			continue
		}
		fv, ok := fields[name]
		if !ok {
			return unknownParameter(name)
		}
		if err := setQueryValue(fv, name, values[len(values)-1]); err != nil {
			return err
		}
	}
	return nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
)

func setQueryValue(fv reflect.Value, name, s string) error {
	switch {
	case fv.Kind() == reflect.Pointer:
		// Optional: nil when the parameter is absent.
		v := reflect.New(fv.Type().Elem())
		if err := setQueryValue(v.Elem(), name, s); err != nil {
			return err
		}
		fv.Set(v)
	case fv.Type() == durationType:
		d, err := parseDuration(name, s)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
	case fv.Type() == timeType:
		t, err := ops.ParseTime(name, s, time.Now())
		if err != nil {
			return err
		}
		fv.Set(reflect.ValueOf(t))
	case fv.Kind() == reflect.String:
		fv.SetString(s)
	case fv.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return badRequest(name, fmt.Sprintf("must be true or false (got %q)", s))
		}
		fv.SetBool(b)
	case fv.CanInt():
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || fv.OverflowInt(n) {
			return badRequest(name, fmt.Sprintf("must be a whole number (got %q)", s))
		}
		fv.SetInt(n)
	default:
		return badRequest(name, "cannot be given in the query")
	}
	return nil
}
