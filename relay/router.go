package relay

import (
	"cmp"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/herald-relay/herald/webhook"
)

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

	// exact indexes the endpoints by the topics they name without a '*';
	// globs indexes those with a '*' in some pattern by each such pattern's
	// literal prefix (what comes before its first '*'), and globLens lists
	// the lengths of those prefixes, shortest first. A topic is looked up
	// once per prefix length, and only the endpoints under a prefix it
	// starts with are matched: a service with thousands of endpoints, each
	// on its own topics ("customer.42.*"), routes in a few map lookups
	// instead of a glob match per endpoint.
	exact    map[string][]*endpointState
	globs    map[string][]*endpointState
	globLens []int
	order    map[*endpointState]int // position in endpoints, to merge the two

	mu    sync.RWMutex
	cache map[string][]*endpointState
}

// maxCachedTopics bounds the topic cache; past it, lookups are computed.
const maxCachedTopics = 4096

// newRouter builds a router for eps, keeping old's state for every endpoint
// whose settings are unchanged. horizon is how long the new endpoints'
// queued pairs may wait (see endpointState.queueCap); kept ones know it
// already, and the claimer reads their state meanwhile: only new states,
// not yet published, are written.
func newRouter(eps []Endpoint, old *router, m *Metrics, horizon time.Duration) *router {
	r := &router{byName: make(map[string]*endpointState, len(eps)), cache: make(map[string][]*endpointState),
		exact: make(map[string][]*endpointState), globs: make(map[string][]*endpointState),
		order: make(map[*endpointState]int, len(eps))}
	kept := map[*endpointState]bool{}
	for i := range eps {
		ep := eps[i]
		ep.MaxInFlight = cmp.Or(ep.MaxInFlight, EndpointMaxInFlightDefault)
		var st *endpointState
		if old != nil {
			if prev := old.byName[ep.Name]; prev != nil && sameEndpoint(prev.Endpoint, &ep) {
				st = prev
				kept[prev] = true
			}
		}
		if st == nil {
			st = newEndpointState(&ep, m)
			st.queueHorizon = horizon
		}
		r.byName[st.Name] = st
		r.order[st] = len(r.endpoints)
		r.endpoints = append(r.endpoints, st)
		if slices.ContainsFunc(st.Topics, func(p string) bool { return strings.IndexByte(p, '*') >= 0 }) {
			for _, p := range st.Topics {
				prefix, _, _ := strings.Cut(p, "*") // a pattern without '*' is its own prefix
				if list := r.globs[prefix]; len(list) == 0 || list[len(list)-1] != st {
					r.globs[prefix] = append(list, st)
				}
				if !slices.Contains(r.globLens, len(prefix)) {
					r.globLens = append(r.globLens, len(prefix))
				}
			}
		} else {
			for _, topic := range st.Topics {
				if list := r.exact[topic]; len(list) == 0 || list[len(list)-1] != st {
					r.exact[topic] = append(list, st)
				}
			}
		}
		if st.Ordered {
			r.ordered = append(r.ordered, st.Name)
			if st.OnDeadSkip {
				r.skipDead = append(r.skipDead, st.Name)
			}
		}
	}
	slices.Sort(r.globLens)
	if old != nil {
		for _, st := range slices.Concat(old.endpoints, old.retired) {
			if !kept[st] && st.busy() {
				r.retired = append(r.retired, st)
			}
		}
	}
	return r
}

// sameSender reports whether a and b are the same Sender. == on two
// interfaces panics when their dynamic type cannot be compared (a struct
// holding a slice, say); such Senders are taken as different.
func sameSender(a, b Sender) bool {
	return comparable(a) && comparable(b) && a == b
}

// comparable reports whether s may be compared with == or used as a map key.
func comparable(s Sender) bool {
	return s == nil || reflect.TypeOf(s).Comparable()
}

// sameEndpoint reports whether two endpoint settings are identical.
func sameEndpoint(a, b *Endpoint) bool {
	return a.Name == b.Name && sameSender(a.Sender, b.Sender) && a.Timeout == b.Timeout && a.MaxInFlight == b.MaxInFlight &&
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
	eps = r.matching(topic)
	r.mu.Lock()
	if len(r.cache) < maxCachedTopics {
		r.cache[topic] = eps
	}
	r.mu.Unlock()
	return eps
}

// matching computes the endpoints subscribed to topic, in their
// configured order: those naming it exactly, merged with the globbed ones
// whose patterns match it.
func (r *router) matching(topic string) []*endpointState {
	exact := r.exact[topic]
	var globbed []*endpointState
	for _, n := range r.globLens {
		if n > len(topic) {
			break
		}
		for _, ep := range r.globs[topic[:n]] {
			if !slices.Contains(globbed, ep) && slices.ContainsFunc(ep.Topics, func(p string) bool { return matchTopic(p, topic) }) {
				globbed = append(globbed, ep)
			}
		}
	}
	if len(globbed) > 1 { // found prefix by prefix: put them back in order
		slices.SortFunc(globbed, func(a, b *endpointState) int { return r.order[a] - r.order[b] })
	}
	if len(globbed) == 0 {
		return exact
	}
	if len(exact) == 0 {
		return globbed
	}
	out := make([]*endpointState, 0, len(exact)+len(globbed))
	for len(exact) > 0 || len(globbed) > 0 {
		if len(globbed) == 0 || (len(exact) > 0 && r.order[exact[0]] < r.order[globbed[0]]) {
			out, exact = append(out, exact[0]), exact[1:]
		} else {
			out, globbed = append(out, globbed[0]), globbed[1:]
		}
	}
	return out
}

// MatchTopic reports whether topic matches the glob pattern of an
// endpoint's topics, in which '*' matches any run of characters (dots
// included) and everything else matches itself: the relay's routing, for
// tools that must say where a message would go. A topic of Herald's own
// events (herald.*) matches only a pattern that starts with "herald.".
func MatchTopic(pattern, topic string) bool { return matchTopic(pattern, topic) }

func matchTopic(pattern, topic string) bool {
	if IsAlertTopic(topic) && !IsAlertTopic(pattern) {
		// Herald's own events go only to endpoints that ask for them by
		// name: a catch-all such as "*" does not start receiving them.
		return false
	}
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

// heldBy is what still holds a keyed message's key, as the claim saw it.
type heldBy struct {
	olderInHotLane bool     // an older message of the key waits in the hot lane
	retrying, dead []string // endpoints with an older pair of the key retrying, or dead
}

// holds reports whether an ordered endpoint must wait for an older message
// of the key before this one.
func (h *heldBy) holds(ep *endpointState) bool {
	return h.olderInHotLane || slices.Contains(h.retrying, ep.Name) ||
		(!ep.OnDeadSkip && slices.Contains(h.dead, ep.Name))
}

// prepare routes a hot message to its endpoints, or marks why it cannot go.
// A pair for an ordered endpoint whose key is held waits in the retry lane
// until it is the key's head.
//
// A message that cannot be sent as it is (invalid), or that names an
// endpoint this relay does not know (unroutable), dies for each endpoint it
// was for, never as a message of no endpoint: its dead rows block the key
// on ordered endpoints like any dead pair, and a replay goes there only.
func (r *Relay) prepare(rt *router, j *job, endpoint, headers string, held *heldBy) {
	j.msg.Type, j.msg.Time = j.topic, j.createdAt // for CloudEvents endpoints
	valid := r.parseHeaders(j, headers)
	eps := rt.route(j.topic, endpoint)
	unknown := len(eps) == 0 && endpoint != ""
	if unknown {
		// No metrics of its own: the name comes from a producer's row.
		eps = []*endpointState{{Endpoint: &Endpoint{Name: endpoint}}}
	}
	if len(eps) == 0 {
		return // unroutable: no subscriber, no pairs
	}
	j.pairs = make([]pair, len(eps))
	for i, ep := range eps {
		p := &j.pairs[i]
		*p = pair{job: j, ep: ep}
		switch {
		case !valid:
			p.result, p.deadReason, p.errText = resultDead, "invalid", j.invalid
		case unknown:
			p.result, p.deadReason, p.errText = resultDead, "unroutable", "endpoint "+endpoint+" is not configured"
		case ep.Ordered && j.key != "" && held.holds(ep):
			p.result = resultBlocked
		}
	}
}

// prepareRetry binds a retry pair to its endpoint. An endpoint that is no
// longer configured keeps its pairs waiting: they are released, not killed,
// so that a configuration mistake loses nothing.
func (r *Relay) prepareRetry(rt *router, j *job, endpoint, headers string) {
	j.msg.Type, j.msg.Time = j.topic, j.createdAt // for CloudEvents endpoints
	ep := rt.byName[endpoint]
	if ep == nil {
		ep = newEndpointState(&Endpoint{Name: endpoint}, r.m) // no Sender: released, to wait for it
	}
	if !r.parseHeaders(j, headers) {
		j.pairs = []pair{{job: j, ep: ep}}
		return
	}
	j.pairs = []pair{{job: j, ep: ep}}
}

func (r *Relay) parseHeaders(j *job, headers string) bool {
	if headers == "" {
		return true
	}
	h, err := webhook.ParseHeaders([]byte(headers))
	if err != nil {
		j.invalid = "headers: " + err.Error()
		return false
	}
	j.msg.Headers = h
	return true
}
