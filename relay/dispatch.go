package relay

import "time"

// dispatch hands the claimed pairs the endpoints can take now to the
// workers, and everything else straight to the completer: jobs with nothing
// to send, and pairs deferred because their endpoint is paused, at its
// max_in_flight or has no rate-limit turn within paceHorizon (these wait in
// the retry lane, not attempted, so a slow or dead endpoint never holds up
// the others). A pair with a later turn goes to a worker that waits for it. It
// returns how many pairs of hot-lane messages took a slot (in flight or
// queued), for the claimer's fan-out estimate.
func (r *Relay) dispatch(jobs []*job) int {
	now := time.Now()
	var send []*pair
	queuedPairs, hotPairs := 0, 0
	for _, j := range jobs {
		j.remaining = len(j.pairs)
		if len(j.pairs) == 0 {
			j.remaining = 1
			r.results <- &pair{job: j}
			continue
		}
		for i := range j.pairs {
			p := &j.pairs[i]
			if p.result == resultBlocked || p.result == resultDead || j.invalid != "" {
				// Decided before any attempt.
				r.results <- p
				continue
			}
			if p.ep.unusable != "" {
				// Held, not lost: it waits in the retry lane, which
				// does not hand it out while the endpoint is unusable,
				// with the reason for operators to read.
				p.result, p.errText = resultDeferred, p.ep.unusable
				r.results <- p
				continue
			}
			if p.ep.Sender == nil {
				p.result = resultReleased
				r.results <- p
				continue
			}
			adm, wait := p.ep.admit(now)
			if wait > 0 {
				p.notBefore = now.Add(wait)
			}
			switch adm {
			case admittedProbe:
				p.probe = true
				fallthrough
			case admitted:
				send = append(send, p)
				if j.lane == hotLane {
					hotPairs++
				}
			case queued:
				queuedPairs++
				if j.lane == hotLane {
					hotPairs++
				}
				p.ep.enqueue(p, j.lane == hotLane && j.attempts > 1)
			default:
				p.result = resultDeferred
				r.results <- p
			}
		}
	}
	r.inFlight.Add(int64(len(send) + queuedPairs))
	r.m.inFlight.Set(float64(r.inFlight.Load()))
	for _, p := range send {
		r.startWorker(p)
	}
	// A queued pair whose endpoint finished everything in the meantime
	// would wait for a completion that never comes: start it here.
	r.startAllQueued()
	return hotPairs
}

func (r *Relay) startAllQueued() {
	rt := r.router.Load()
	for _, st := range rt.endpoints {
		r.startQueued(st)
	}
	for _, st := range rt.retired {
		r.startQueued(st)
	}
}

// startQueued hands the endpoint's queued pairs to workers while it has
// free slots.
func (r *Relay) startQueued(st *endpointState) {
	for {
		p, paused := st.next()
		if p == nil {
			return
		}
		if paused {
			p.result = resultDeferred
			r.finished(p)
			continue
		}
		r.startWorker(p)
	}
}

// finished passes a pair to the completer, then releases its place in the
// window. In that order: a worker waiting on a busy completer keeps its
// place, so the claimer starts no request beside it, and max_in_flight
// bounds the goroutines and pairs held however slow the outcome writes are.
func (r *Relay) finished(p *pair) {
	r.results <- p
	r.inFlight.Add(-1)
	signal(r.room)
}
