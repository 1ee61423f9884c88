package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/herald-relay/herald/webhook"
)

// startWorker hands p to a worker: one waiting for work if there is one,
// else a new goroutine. Workers are started per admitted pair, not kept in
// a pool the size of the window: the window can then be as wide as slow
// receivers need (thousands of requests in flight) while an idle or fast
// relay holds only the goroutines it uses. A worker that runs out of work
// waits workerIdleTimeout for more before it ends: a new goroutine grows
// its stack to what a delivery needs (several copies), which cost a relay
// serving thousands of endpoints, a few requests each, more CPU per
// delivery than dialling them. Only the claimer starts workers, and never
// after claimerDone is closed.
func (r *Relay) startWorker(p *pair) {
	select {
	case r.handoff <- p:
		return
	default:
	}
	r.workers.Add(1)
	r.stats.workersStarted.Add(1)
	go func() {
		defer r.workers.Done()
		r.runWorker(r.workCtx, p)
	}()
}

// workerIdleTimeout is how long a worker with nothing to do waits for the
// claimer to hand it a pair before it ends.
const workerIdleTimeout = 2 * time.Second

// runWorker makes delivery attempts: p's, then those of the pairs queued
// for its endpoint, while there are any, then those the claimer hands it,
// until it has waited workerIdleTimeout for one or the claimer is done. A
// pair is attempted only if the relay is not stopping and the attempt is
// sure to end while the lease holds; otherwise it is released untouched.
func (r *Relay) runWorker(ctx context.Context, p *pair) {
	var idle *time.Timer
	for p != nil {
		r.attempt(ctx, p)
		r.endpointDone(p)
		// The slot just freed goes to the endpoint's next queued pair,
		// on this worker.
		next, paused := p.ep.next()
		r.finished(p)
		for paused {
			next.result = resultDeferred
			r.finished(next)
			next, paused = p.ep.next()
		}
		if next == nil {
			p.ep.closeIfIdle() // the last request of a replaced endpoint
			if idle == nil {
				idle = time.NewTimer(workerIdleTimeout)
				defer idle.Stop()
			} else {
				idle.Reset(workerIdleTimeout)
			}
			select {
			case next = <-r.handoff:
			case <-idle.C:
			case <-r.claimerDone:
			}
		}
		p = next
	}
}

func (r *Relay) attempt(ctx context.Context, p *pair) {
	ep := p.ep
	g := p.job.gen
	if !r.awaitTurn(p.notBefore) || r.stopping.Load() || time.Now().Add(ep.Timeout).After(p.job.deadline) || !r.holds(g) {
		p.result = resultReleased
		return
	}
	start := time.Now()
	// The relay, not the Sender, bounds the attempt: one that ignores its
	// own timeout still ends by the endpoint's timeout, and never after the
	// lease, when another relay may deliver the message too.
	end := p.job.deadline
	if ep.Timeout > 0 && start.Add(ep.Timeout).Before(end) {
		end = start.Add(ep.Timeout)
	}
	actx, cancel := context.WithDeadline(ctx, end)
	actx, msg, span := r.startDelivery(actx, p)
	defer endDelivery(span, p) // once p holds the outcome
	// Cancelled by the watchdog if the relay can no longer prove it holds
	// the row: another relay may take it over.
	stopWatch := context.AfterFunc(g.ctx, cancel)
	res, err := ep.Sender.Send(actx, msg)
	timedOut := errors.Is(actx.Err(), context.DeadlineExceeded)
	stopWatch()
	cancel()
	if g.ctx.Err() != nil && err != nil {
		// Not the endpoint's failure (its breaker does not count it): the
		// row is given back, to whichever relay holds it now.
		p.result, p.errText = resultReleased, "cancelled: the relay lost contact with PostgreSQL"
		return
	}
	p.started = start
	p.took = time.Since(start)
	ep.metrics.attemptSeconds.Observe(p.took.Seconds())
	p.attempted = true
	if err == nil {
		p.result, p.status = resultOK, res.Status
		return
	}
	p.result = resultRetry
	p.errClass = errorClass(err, timedOut, ctx.Err() != nil)
	var de *webhook.DeliveryError
	if errors.As(err, &de) {
		p.status = de.Status
		p.errText = de.Reason
		p.response = string(de.Response)
		p.retryAfter = de.RetryAfter
		switch {
		case de.Gone:
			p.result, p.deadReason = resultDead, "gone"
		case !de.Retryable:
			p.result, p.deadReason = resultDead, "rejected"
		}
		return
	}
	if ctx.Err() != nil {
		p.errText = "cancelled: relay shutting down"
		return
	}
	p.errText = err.Error()
}

// awaitTurn waits until t, a rate-limited pair's turn (at most
// paceHorizon away). It returns false if the relay stops claiming first.
func (r *Relay) awaitTurn(t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return true
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.claimerDone:
		return false
	}
}

// endpointDone records the end of an attempt with the endpoint's breaker
// and logs its transitions, and reports opening and closing as events
// (docs/alerts.md).
func (r *Relay) endpointDone(p *pair) {
	if !p.attempted {
		p.ep.inFlight.Add(-1)
		p.ep.unprobe(p.probe)
		return
	}
	now := time.Now()
	p.ep.observe(p.took)
	unhealthy := p.result != resultOK &&
		(p.status == 0 || p.status >= 500 || p.status == 429 || p.status == 408)
	change, interval := p.ep.done(r.cfg.Breaker, unhealthy, p.probe, now)
	switch change {
	case breakerOpened:
		r.recordBreaker(p.ep.Name, true, now, now.Add(interval), now)
		r.breakerAlert(p.ep, true, now, now.Add(interval), 0)
		r.m.setFlag(r.m.paused, p.ep.Name, true)
		r.log.Warn().Str("endpoint", p.ep.Name).Int("failures", r.cfg.Breaker.FailureThreshold).
			Dur("probe_in", interval).Msg("endpoint paused: circuit breaker open; its messages wait, unattempted")
	case breakerStillOpen:
		_, since := p.ep.paused()
		r.recordBreaker(p.ep.Name, true, since, now.Add(interval), now)
		r.log.Info().Str("endpoint", p.ep.Name).Dur("probe_in", interval).Msg("probe failed: endpoint stays paused")
		if ok, failingFor := p.ep.shouldDisable(r.cfg.DisableAfter, now); ok && r.cfg.OnDisable != nil {
			reason := fmt.Sprintf("failing for %s (breaker.disable_after %s)", failingFor.Round(time.Second), r.cfg.DisableAfter)
			r.log.Error().Str("endpoint", p.ep.Name).Str("reason", reason).
				Msg("DISABLING ENDPOINT: its messages wait until an operator runs `herald endpoints enable`")
			r.callbacks.Add(1)
			go func() {
				defer r.callbacks.Done()
				r.cfg.OnDisable(p.ep.Name, reason)
			}()
		}
	case breakerClosed:
		r.recordBreaker(p.ep.Name, false, now, time.Time{}, now)
		r.breakerAlert(p.ep, false, now, time.Time{}, interval)
		r.m.setFlag(r.m.paused, p.ep.Name, false)
		r.log.Info().Str("endpoint", p.ep.Name).Dur("paused_for", interval).Msg("probe succeeded: endpoint resumed")
		r.shiftClocks(p.ep.Name, interval)
	}
}
