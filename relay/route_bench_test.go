package relay

import (
	"fmt"
	"testing"
)

// BenchmarkRoute5000Endpoints: a service sending to its customers, one
// endpoint and one topic each, messages over more topics than the cache
// holds. Routing must not cost a glob match per endpoint per message.
func BenchmarkRoute5000Endpoints(b *testing.B) {
	const n = 5000
	eps := make([]Endpoint, n)
	for i := range eps {
		eps[i] = Endpoint{Name: fmt.Sprintf("customer-%d", i), Topics: []string{fmt.Sprintf("customer.%d.events", i)}}
	}
	eps = append(eps, Endpoint{Name: "audit", Topics: []string{"customer.*"}})
	rt := newRouter(eps, nil, NewMetrics(nil), 0)
	topics := make([]string, 2*maxCachedTopics)
	for i := range topics {
		topics[i] = fmt.Sprintf("customer.%d.events", i%n)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := rt.route(topics[i%len(topics)], "")
		if len(got) != 2 {
			b.Fatalf("%s: %d endpoints", topics[i%len(topics)], len(got))
		}
	}
}

// BenchmarkRouteGlobs: the same service with each customer's endpoint on
// a pattern ("customer.42.*"), messages over more topics than the cache
// holds; 5,000 globbed endpoints must cost about what one does.
func BenchmarkRouteGlobs(b *testing.B) {
	for _, n := range []int{1, 5000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			eps := make([]Endpoint, n)
			for i := range eps {
				eps[i] = Endpoint{Name: fmt.Sprintf("customer-%d", i), Topics: []string{fmt.Sprintf("customer.%d.*", i)}}
			}
			rt := newRouter(eps, nil, NewMetrics(nil), 0)
			topics := make([]string, 2*maxCachedTopics)
			for i := range topics {
				topics[i] = fmt.Sprintf("customer.%d.created-%d", i%n, i) // distinct: past the cache
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if got := rt.route(topics[i%len(topics)], ""); len(got) != 1 {
					b.Fatalf("%s: %d endpoints", topics[i%len(topics)], len(got))
				}
			}
		})
	}
}

func TestRouteMatchesExactAndGlobTopicsInEndpointOrder(t *testing.T) {
	t.Parallel()
	rt := newRouter([]Endpoint{
		{Name: "a", Topics: []string{"orders.*"}},
		{Name: "b", Topics: []string{"orders.created", "invoices.paid"}},
		{Name: "c", Topics: []string{"*.created", "orders.created"}},
		{Name: "d", Topics: []string{"invoices.paid"}},
		{Name: "e"}, // only messages that name it
	}, nil, NewMetrics(nil), 0)
	names := func(topic, endpoint string) (out []string) {
		for _, st := range rt.route(topic, endpoint) {
			out = append(out, st.Name)
		}
		return out
	}
	for _, c := range []struct {
		topic string
		want  []string
	}{
		{"orders.created", []string{"a", "b", "c"}},
		{"orders.paid", []string{"a"}},
		{"invoices.paid", []string{"b", "d"}},
		{"users.created", []string{"c"}},
		{"orders", nil},
		{"o", nil},
		{"nothing", nil},
	} {
		for range 2 { // computed, then from the cache
			if got := names(c.topic, ""); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("%s: %v, want %v", c.topic, got, c.want)
			}
		}
	}
	if got := names("anything", "e"); fmt.Sprint(got) != "[e]" {
		t.Fatalf("named: %v", got)
	}
}
