package relay

import (
	"sync"
	"testing"
	"time"
)

// SetEndpoints builds a new router while the claimer goes on reading the
// kept endpoints' states (queueCap on every admission): building it must
// not write to them. Under -race this caught setQueueHorizon writing the
// horizon of every endpoint, kept ones included, as the claimer read it.
func TestNewRouterLeavesKeptEndpointStatesAlone(t *testing.T) {
	eps := []Endpoint{{Name: "a", Topics: []string{"t"}, MaxInFlight: 4}}
	m := NewMetrics(nil)
	const horizon = time.Minute
	old := newRouter(eps, nil, m, horizon)
	kept := old.byName["a"]
	kept.observe(time.Millisecond)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the claimer
		defer wg.Done()
		for range 100 {
			_ = kept.queueCap()
		}
	}()
	next := newRouter(eps, old, m, horizon)
	wg.Wait()
	if next.byName["a"] != kept {
		t.Fatal("an unchanged endpoint's state was not kept")
	}
	if kept.queueHorizon != horizon {
		t.Fatalf("queueHorizon = %v, want %v", kept.queueHorizon, horizon)
	}
}
