package relay

import (
	"context"
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
	// Sender delivers to the endpoint.
	Sender Sender
	// Timeout is the Sender's per-attempt timeout; the relay never starts an
	// attempt unless the lease outlasts it.
	Timeout time.Duration
	// MaxInFlight bounds this endpoint's concurrent requests from one relay.
	// 0 means no bound beyond Config.MaxInFlight.
	MaxInFlight int
	// RateLimit bounds requests per second from one relay; 0 means none.
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
}

// router maps a message to its endpoints. Lookups by topic are cached: a
// deployment has few topics and the hot path should not re-match globs.
type router struct {
	byName    map[string]*endpointState
	endpoints []*endpointState
	// ordered and skipDead name the ordered endpoints, and those of them
	// that move past dead messages, for the claim statements.
	ordered, skipDead []string

	mu    sync.RWMutex
	cache map[string][]*endpointState
}

// maxCachedTopics bounds the topic cache; past it, lookups are computed.
const maxCachedTopics = 4096

func newRouter(eps []Endpoint) *router {
	r := &router{byName: make(map[string]*endpointState, len(eps)), cache: make(map[string][]*endpointState)}
	for i := range eps {
		st := newEndpointState(&eps[i])
		r.byName[st.Name] = st
		r.endpoints = append(r.endpoints, st)
		if st.Ordered {
			r.ordered = append(r.ordered, st.Name)
			if st.OnDeadSkip {
				r.skipDead = append(r.skipDead, st.Name)
			}
		}
	}
	return r
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
