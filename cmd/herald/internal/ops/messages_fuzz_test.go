package ops

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzMessageInputs feeds what a face passes from outside to the messages
// commands: a page cursor (--after), a time (--since) and a message's
// headers (written by any producer). None may panic; a bad cursor or time
// is a *FilterError naming its field; a cursor that decodes re-encodes to
// one that decodes the same; and a header whose name looks secret never
// shows its value.
func FuzzMessageInputs(f *testing.F) {
	good := cursor{CreatedAt: time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC), ID: "msg_1", Rank: 2, Endpoint: "acme"}.encode()
	for _, s := range []struct{ cursor, when, headers string }{
		{good, "24h", `{"Authorization": "Bearer hunter2", "X-Tenant": "acme"}`},
		{"", "2026-12-01T10:00:00Z", `{"X-Api-Key": 3, "x": null}`},
		{"not base64!", "-1h", `[1, 2]`},
		{"eyJ0IjoiIiwiaSI6IiJ9", "yesterday", `{"Cookie": {"a": "hunter2"}}`},
		{strings.Repeat("A", 2000), "2026-13-01T00:00:00Z", `{`},
	} {
		f.Add(s.cursor, s.when, s.headers)
	}
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, after, when, headers string) {
		var fe *FilterError
		c, err := decodeCursor(after)
		if err != nil {
			if !errors.As(err, &fe) || fe.Field != "after" {
				t.Fatalf("cursor %q: %v is not a FilterError for after", after, err)
			}
		} else if c2, err := decodeCursor(c.encode()); err != nil || !c2.CreatedAt.Equal(c.CreatedAt) || c2.ID != c.ID ||
			c2.Rank != c.Rank || c2.Endpoint != c.Endpoint {
			t.Fatalf("cursor %q: %+v does not round-trip: %+v, %v", after, c, c2, err)
		}

		if _, err := ParseTime("since", when, now); err != nil && (!errors.As(err, &fe) || fe.Field != "since") {
			t.Fatalf("time %q: %v is not a FilterError for since", when, err)
		}

		var obj map[string]json.RawMessage
		if json.Unmarshal([]byte(headers), &obj) != nil {
			return
		}
		masked := maskHeaders(json.RawMessage(headers))
		for k, v := range masked {
			if SensitiveHeader(k) && v != "[redacted]" {
				t.Fatalf("header %q shows its value %q", k, v)
			}
		}
	})
}
