package ops

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/webhook"
)

// FuzzRowEndpoint turns any row of outbox.endpoints (as scanned; the
// table's CHECKs are not assumed) into an Endpoint and validates it as the
// loader does. It must not panic or stall; a bad row gets one *config.Error
// naming its fields, without a secret; and a row that passes is one the
// webhook client can build, or it would be left out of routing.
func FuzzRowEndpoint(f *testing.F) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	type seed struct {
		name, url, secrets, topics, hname, hvalue, onDead, tlsMin string
		timeoutMS, maxInFlight, rateBurst                         int
		rateLimit                                                 float64
		statuses                                                  []byte
		ordered, follow                                           bool
	}
	for _, s := range []seed{
		{name: "billing", url: "https://billing.example.com/hook", secrets: secret, topics: "orders.*", hname: "Authorization", hvalue: "Bearer t"},
		{name: "b", url: "http://user:hunter2@127.0.0.1:8080/x?token=hunter2", secrets: secret + "\n" + secret, timeoutMS: 1, maxInFlight: -1},
		{name: "Bad Name!", url: "ftp://x", secrets: "hunter2", hname: "Bad Name", hvalue: "a\r\nb"},
		{name: "b", url: "https://user:hunter2/x", secrets: "whsec_hunter2", hname: "Upgrade", hvalue: "h2c"},
		{name: "b", url: "https://example.com", secrets: " " + secret + " ", onDead: "skip", ordered: true, tlsMin: "1.3"},
		{name: "b", url: "https://example.com", secrets: secret, rateLimit: 1e300, rateBurst: 1 << 40, timeoutMS: 1 << 40, statuses: []byte{0, 10, 60, 255}},
		{name: "b", url: "https://[::1]:443/x", secrets: secret, tlsMin: "1.1", onDead: "drop", follow: true},
		{name: "b", url: "https://example.com/\x00", secrets: secret, hname: "X-A", hvalue: "\xff\xfe"},
		{name: "b", url: "https://example.com", secrets: secret, topics: "\n \n*"},
	} {
		f.Add(s.name, s.url, s.secrets, s.topics, s.hname, s.hvalue, s.onDead, s.tlsMin,
			s.timeoutMS, s.maxInFlight, s.rateBurst, s.rateLimit, s.statuses, s.ordered, s.follow)
	}
	d := config.Default().Delivery
	client := webhook.NewClient(webhook.ClientConfig{})
	f.Fuzz(func(t *testing.T, name, url, secrets, topics, hname, hvalue, onDead, tlsMin string,
		timeoutMS, maxInFlight, rateBurst int, rateLimit float64, statuses []byte, ordered, follow bool,
	) {
		r := row{
			Name: name, URL: url, RateLimit: rateLimit, RateBurst: rateBurst, Ordered: ordered,
			OnDead: onDead, FollowRedirects: follow, Source: string(SourceSQL),
		}
		if secrets != "" {
			r.Secrets = strings.Split(secrets, "\n")
		}
		if topics != "" {
			r.Topics = strings.Split(topics, "\n")
		}
		if hname != "" {
			r.Headers, _ = json.Marshal(map[string]string{hname: hvalue})
		}
		if timeoutMS != 0 {
			r.TimeoutMS = &timeoutMS
		}
		if maxInFlight != 0 {
			r.MaxInFlight = &maxInFlight
		}
		if tlsMin != "" {
			r.TLSMinVersion = &tlsMin
		}
		if statuses != nil {
			r.PermanentStatuses = []int{}
			for _, b := range statuses {
				r.PermanentStatuses = append(r.PermanentStatuses, 350+int(b))
			}
		}

		start := time.Now()
		ep, err := r.endpoint()
		if err != nil {
			// A row that cannot be read names itself, never a header value.
			var re RowError
			if !errors.As(err, &re) || re.Name != name {
				t.Fatalf("not a RowError naming %q: %#v", name, err)
			}
			if len(hvalue) >= 8 && strings.Contains(err.Error(), hvalue) {
				t.Fatalf("a header value in the error: %v", err)
			}
			return
		}
		err = config.ValidateEndpoint(ep.Endpoint, d)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("took %v", d)
		}
		if err != nil {
			var cerr *config.Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
				t.Fatalf("not a non-empty *config.Error: %#v", err)
			}
			for _, p := range cerr.Problems {
				if p.Field == "" || p.Err == nil {
					t.Fatalf("a problem that names no field: %#v", p)
				}
			}
			msg := fmt.Sprintf("%v %+v %#v", err, err, err)
			for _, s := range append(r.Secrets, hvalue) {
				if len(s) >= 8 && strings.Contains(msg, s) && !strings.Contains(name+url+hname+strings.Join(r.Topics, "")+onDead+tlsMin, s) {
					t.Fatalf("a secret in the error: %s", msg)
				}
			}
			return
		}
		if _, err := client.Endpoint(ep.WithDefaults(d).WebhookConfig()); err != nil {
			t.Fatalf("valid row that the webhook client refuses: %v", err)
		}
	})
}
