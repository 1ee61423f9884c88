package relay

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/herald-relay/herald/webhook"
)

// Sender makes one delivery attempt; *webhook.Endpoint implements it. It
// returns nil for an acknowledgment and, for anything else, an error that
// may be a *webhook.DeliveryError.
type Sender interface {
	Deliver(ctx context.Context, m *webhook.Message) error
}

// Endpoint is a destination and the topics it subscribes to.
type Endpoint struct {
	// Name identifies the endpoint in the database, logs and metrics.
	Name string
	// Topics are glob patterns; '*' matches any run of characters, dots
	// included. A message whose endpoint column names this endpoint is
	// delivered here whatever its topic.
	Topics []string
	// Sender delivers to the endpoint. If it has a Close() method, as
	// *webhook.Endpoint does, the relay calls it once SetEndpoints has
	// replaced or removed the endpoint and the requests it had in flight
	// have finished, unless a current endpoint has the same Sender. The
	// senders in use when the relay stops are the caller's to close.
	Sender Sender
	// Timeout is the Sender's per-attempt timeout; the relay never starts an
	// attempt unless the lease outlasts it.
	Timeout time.Duration
	// MaxInFlight bounds this endpoint's concurrent requests from one relay.
	// 0 means no bound beyond Config.MaxInFlight.
	MaxInFlight int
	// RateLimit bounds requests per second from one relay; 0 means none.
	// Claimed pairs wait in memory for their turn, up to a second ahead;
	// claims for the endpoint are sized to the turns within that second.
	RateLimit float64
	// RateBurst is the rate limiter's burst. Defaults to 1.
	RateBurst int
	// Ordered delivers the messages of one key in commit order: a message
	// is not sent before the key's previous message was acknowledged by
	// this endpoint (or died, see OnDeadSkip).
	Ordered bool
	// OnDeadSkip lets an ordered key move on past a message that died for
	// this endpoint. By default a dead message blocks its key until an
	// operator replays it.
	OnDeadSkip bool
	// Disabled keeps the endpoint's messages waiting in the retry lane,
	// unattempted, until it is enabled again.
	Disabled bool
	// Unusable, when set, says why the endpoint exists but cannot be used
	// now: a TLS file that does not load, settings that do not validate, a
	// timeout the lease cannot hold. The endpoint stays in routing, so that
	// nothing owed to it is acknowledged without it or dies as unroutable:
	// its pairs wait in the retry lane, unattempted (no attempt counted),
	// with this error as their last_error, until SetEndpoints brings a
	// usable version, which finds them due. Sender and Timeout may be unset.
	// The error is stored and logged: it must hold no secret.
	Unusable error
}

// router maps a message to its endpoints. Lookups by topic are cached: a
// deployment has few topics and the hot path should not re-match globs.
type router struct {
	byName    map[string]*endpointState
	endpoints []*endpointState
	// ordered and skipDead name the ordered endpoints, and those of them
	// that move past dead messages, for the claim statements.
	ordered, skipDead []string
	// retired are states of replaced endpoints that still have requests in
	// flight or queued.
	retired []*endpointState

	mu    sync.RWMutex
	cache map[string][]*endpointState
}

// maxCachedTopics bounds the topic cache; past it, lookups are computed.
const maxCachedTopics = 4096

// newRouter builds a router for eps, keeping old's state for every endpoint
// whose settings are unchanged.
func newRouter(eps []Endpoint, old *router, m *Metrics) *router {
	r := &router{byName: make(map[string]*endpointState, len(eps)), cache: make(map[string][]*endpointState)}
	kept := map[*endpointState]bool{}
	for i := range eps {
		ep := eps[i]
		var st *endpointState
		if old != nil {
			if prev := old.byName[ep.Name]; prev != nil && sameEndpoint(prev.Endpoint, &ep) {
				st = prev
				kept[prev] = true
			}
		}
		if st == nil {
			st = newEndpointState(&ep, m)
		}
		r.byName[st.Name] = st
		r.endpoints = append(r.endpoints, st)
		if st.Ordered {
			r.ordered = append(r.ordered, st.Name)
			if st.OnDeadSkip {
				r.skipDead = append(r.skipDead, st.Name)
			}
		}
	}
	if old != nil {
		for _, st := range slices.Concat(old.endpoints, old.retired) {
			if !kept[st] && st.busy() {
				r.retired = append(r.retired, st)
			}
		}
	}
	return r
}

// sameEndpoint reports whether two endpoint settings are identical.
func sameEndpoint(a, b *Endpoint) bool {
	return a.Name == b.Name && a.Sender == b.Sender && a.Timeout == b.Timeout && a.MaxInFlight == b.MaxInFlight &&
		a.RateLimit == b.RateLimit && a.RateBurst == b.RateBurst && a.Ordered == b.Ordered &&
		a.OnDeadSkip == b.OnDeadSkip && a.Disabled == b.Disabled && slices.Equal(a.Topics, b.Topics) &&
		errorText(a.Unusable) == errorText(b.Unusable)
}

// errorText is err's text, or "" for nil.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// claimable names the endpoints the retry lane may hand pairs to now: not
// disabled, not paused, with room.
func (r *router) claimable(now time.Time) []string {
	out := make([]string, 0, len(r.endpoints))
	for _, st := range r.endpoints {
		if !st.excluded(now) {
			out = append(out, st.Name)
		}
	}
	return out
}

// lookup returns the named endpoint's state; r may be nil.
func (r *router) lookup(name string) *endpointState {
	if r == nil {
		return nil
	}
	return r.byName[name]
}

// diff names the endpoints added, removed and changed from r to next.
func (r *router) diff(next *router) (added, removed, changed []string) {
	for name, st := range next.byName {
		prev, ok := r.byName[name]
		switch {
		case !ok:
			added = append(added, name)
		case prev != st:
			changed = append(changed, name)
		}
	}
	for name := range r.byName {
		if _, ok := next.byName[name]; !ok {
			removed = append(removed, name)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	slices.Sort(changed)
	return added, removed, changed
}

// route returns the endpoints for a message: the named one if set (nil
// when unknown), else every endpoint subscribed to the topic.
func (r *router) route(topic, endpoint string) []*endpointState {
	if endpoint != "" {
		if ep, ok := r.byName[endpoint]; ok {
			return []*endpointState{ep}
		}
		return nil
	}
	r.mu.RLock()
	eps, ok := r.cache[topic]
	r.mu.RUnlock()
	if ok {
		return eps
	}
	for _, ep := range r.endpoints {
		for _, pat := range ep.Topics {
			if matchTopic(pat, topic) {
				eps = append(eps, ep)
				break
			}
		}
	}
	r.mu.Lock()
	if len(r.cache) < maxCachedTopics {
		r.cache[topic] = eps
	}
	r.mu.Unlock()
	return eps
}

// matchTopic reports whether topic matches the glob pattern, in which '*'
// matches any run of characters (dots included) and everything else matches
// itself.
func matchTopic(pattern, topic string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == topic
	}
	if !strings.HasPrefix(topic, pattern[:star]) {
		return false
	}
	topic = topic[star:]
	pattern = pattern[star+1:]
	for {
		star = strings.IndexByte(pattern, '*')
		if star < 0 {
			return strings.HasSuffix(topic, pattern)
		}
		i := strings.Index(topic, pattern[:star])
		if i < 0 {
			return false
		}
		topic = topic[i+star:]
		pattern = pattern[star+1:]
	}
}
