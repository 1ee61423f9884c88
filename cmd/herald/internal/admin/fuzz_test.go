package admin

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

// FuzzEndpointBody: whatever bytes a client sends as an endpoint, reading
// and checking them never panics, and a refusal is a 400 or 413 that names
// the field at fault.
func FuzzEndpointBody(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"name": "a"}`, `{"name": "a", "url": "https://a.example.com", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}`,
		`{"headers": {"X": 1}}`, `{"headers": {"Bad Name": "v\r\n"}}`, `{"timeout_ms": -1, "rate_limit": 1e309}`, `{"permanent_statuses": [410, 429, 600]}`,
		`{"max_in_flight": "ten"}`, `{"colour": 1}`, `{"name": "a"} {}`, `{"secrets": [1]}`, `{"tls_ca_file": "relative.pem"}`, `{"name":`,
	} {
		f.Add([]byte(seed))
	}
	a := &api{herald: config.Default(), log: zerolog.Nop()}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/v1/endpoints", bytes.NewReader(body))
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, MaxBodyBytes)
		var in endpointIn
		err := decodeBody(r, &in, false)
		if err == nil {
			ep := ops.Endpoint{Endpoint: config.Endpoint{Name: in.Name}}
			in.Apply(&ep)
			_, err = a.check(ep)
		}
		if err == nil {
			return
		}
		status, e := a.errorResponse(err, route{path: "/v1/endpoints"})
		if status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
			t.Fatalf("%q: status %d (%v)", body, status, err)
		}
		if e.Field == "" || e.Error == "" {
			t.Fatalf("%q: no field named: %+v", body, e)
		}
	})
}
