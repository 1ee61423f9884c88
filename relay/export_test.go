package relay

import (
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// Claim is what one claim took, by lane, as relay_test sees it.
type Claim = claimSignal

// BreakerRecord is a breaker transition written, as relay_test sees it.
type BreakerRecord = breakerSignal

// signalTimeout bounds every wait on a test signal: generous, for a machine
// shared with other test runs under the race detector.
const signalTimeout = 10 * time.Second

// InitTestSignals turns r's test signals on and returns them. Call it
// before Start: the relay's goroutines read the signals unguarded.
func InitTestSignals(r *Relay) *testSignals {
	r.signals.Claimed.turnOn()
	r.signals.ClaimingStopped.turnOn()
	r.signals.BreakerRecorded.turnOn()
	return &r.signals
}

func (s *testSignal[T]) turnOn() { s.ch = make(chan T, testSignalBuffer) }

// Signals returns r's test signals, which InitTestSignals turned on.
func Signals(r *Relay) *testSignals { return &r.signals }

// Wait returns the next value of the signal, or fails t after
// signalTimeout.
func (s *testSignal[T]) Wait(t testing.TB) T {
	t.Helper()
	return s.await(t, 1, nil)[0]
}

// WaitFresh drops the values signalled so far, then waits for n values for
// which match is true (every value counts when match is nil) and returns
// them, or fails t after signalTimeout. A value being signalled as it is
// called may belong to work that began before: ask for one more when that
// matters.
func (s *testSignal[T]) WaitFresh(t testing.TB, n int, match func(T) bool) []T {
	t.Helper()
drain:
	for range cap(s.ch) {
		select {
		case <-s.ch:
		default:
			break drain
		}
	}
	return s.await(t, n, match)
}

func (s *testSignal[T]) await(t testing.TB, n int, match func(T) bool) []T {
	t.Helper()
	if s.ch == nil {
		t.Fatal("test signal not turned on: call relay.InitTestSignals before Start")
	}
	timeout := time.After(signalTimeout)
	var got []T
	for len(got) < n {
		select {
		case v := <-s.ch:
			if match == nil || match(v) {
				got = append(got, v)
			}
		case <-timeout:
			var zero T
			t.Fatalf("%d of %d %T signals within %s", len(got), n, zero, signalTimeout)
		}
	}
	return got
}

// RecordBreakerSQL is the statement a breaker transition is written with.
const RecordBreakerSQL = recordBreakerSQL

// DeadAlertsPerSecond is how many herald.message.dead events a relay
// writes per second before it summarises.
const DeadAlertsPerSecond = deadAlertsPerSecond

// AlertFields names the JSON fields of an alert type.
func AlertFields(v any) []string {
	t := reflect.TypeOf(v)
	out := make([]string, t.NumField())
	for i := range out {
		out[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return out
}

// HoldOutcomes makes r's completer take no finished pair until release is
// called, as when its outcome writes stall. Call it before Start.
func HoldOutcomes(r *Relay) (release func()) {
	r.holdOutcomes = make(chan struct{})
	var once sync.Once
	return func() { once.Do(func() { close(r.holdOutcomes) }) }
}

// WorkersStarted is how many worker goroutines r has started.
func WorkersStarted(r *Relay) int64 { return r.stats.workersStarted.Load() }
