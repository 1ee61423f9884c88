package relay

// testSignal is a stage of the relay's work that a test can wait for, as
// in River's internal/testsignal: signal costs one nil check unless a test
// turned the signal on before Start (export_test.go), and then hands the
// value to the test without ever blocking the relay.
type testSignal[T any] struct {
	ch chan T // nil outside tests
}

// testSignalBuffer is how many values a signal keeps for a test that is not
// waiting on it at the moment. The relay's loops run on regardless, so the
// oldest values make room for the newest.
const testSignalBuffer = 64

func (s *testSignal[T]) signal(v T) {
	if s.ch == nil {
		return
	}
	select {
	case s.ch <- v:
		return
	default:
	}
	// Full: the oldest value makes room.
	select {
	case <-s.ch:
	default:
	}
	select {
	case s.ch <- v:
	default:
	}
}

// testSignals are the stages tests wait for instead of sleeping.
type testSignals struct {
	// Claimed: a claim round trip returned (claimOnce).
	Claimed testSignal[claimSignal]
	// ClaimingStopped: Stop has stopped the claimer and waits for the
	// requests in flight.
	ClaimingStopped testSignal[struct{}]
	// BreakerRecorded: a breaker transition was written to outbox.breakers
	// (or failed to be).
	BreakerRecorded testSignal[breakerSignal]
}

// breakerSignal is a breaker transition written.
type breakerSignal struct {
	Endpoint string
	Open     bool
	Err      error
}

// claimSignal is what one claim took, by lane.
type claimSignal struct {
	Hot, Retry int  // rows claimed from each lane
	RetryLane  bool // whether this claim asked the retry lane at all
}
