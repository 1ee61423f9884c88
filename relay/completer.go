package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// orphanDelay is how long a retry pair whose endpoint is no longer
// configured waits before it is looked at again.
const orphanDelay = time.Minute

// flushAttempts bounds how often one batch of outcomes is retried after a
// database error. A batch that cannot be written is dropped: its rows stay
// leased and are delivered again when the lease lapses, so nothing is lost.
const flushAttempts = 5

// outcomes is one batch of finished rows, written in one round trip.
type outcomes struct {
	jobs int

	hotAck []int64

	hotReleaseSeq, hotReleaseLease []int64

	settleSeq, settleLease []int64
	pSeq                   []int64
	pEndpoint              []string
	pAttempts              []int32
	pDelayMs               []int64
	pStatus                []int32
	pError, pResponse      []string
	pDeadReason            []string
	pAttempted             []bool

	keys []string // keys of settled rows, for promoteSQL
	// dueNow is set when pairs go to the retry lane due at once (blocked
	// behind an older message of their key).
	dueNow bool

	ackSeq      []int64
	ackEndpoint []string

	rsSeq               []int64
	rsEndpoint          []string
	rsLease, rsDelayMs  []int64
	rsStatus            []int32
	rsError, rsResponse []string
	rsAttempted         []bool
	burySeq             []int64
	buryEndpoint        []string
	buryLease           []int64
	buryStatus          []int32
	buryError, buryResp []string
	buryReason          []string
}

func (o *outcomes) reset() {
	*o = outcomes{
		hotAck: o.hotAck[:0], hotReleaseSeq: o.hotReleaseSeq[:0], hotReleaseLease: o.hotReleaseLease[:0],
		settleSeq: o.settleSeq[:0], settleLease: o.settleLease[:0],
		pSeq: o.pSeq[:0], pEndpoint: o.pEndpoint[:0], pAttempts: o.pAttempts[:0], pDelayMs: o.pDelayMs[:0],
		pStatus: o.pStatus[:0], pError: o.pError[:0], pResponse: o.pResponse[:0], pDeadReason: o.pDeadReason[:0],
		pAttempted: o.pAttempted[:0],
		ackSeq:     o.ackSeq[:0], ackEndpoint: o.ackEndpoint[:0],
		rsSeq: o.rsSeq[:0], rsEndpoint: o.rsEndpoint[:0], rsLease: o.rsLease[:0], rsDelayMs: o.rsDelayMs[:0],
		rsStatus: o.rsStatus[:0], rsError: o.rsError[:0], rsResponse: o.rsResponse[:0], rsAttempted: o.rsAttempted[:0],
		burySeq: o.burySeq[:0], buryEndpoint: o.buryEndpoint[:0], buryLease: o.buryLease[:0], buryStatus: o.buryStatus[:0],
		buryError: o.buryError[:0], buryResp: o.buryResp[:0], buryReason: o.buryReason[:0],
		keys: o.keys[:0],
	}
}

func (o *outcomes) addSettlePair(seq int64, endpoint string, attempts int, delay time.Duration, p *pair, deadReason string) {
	o.pSeq = append(o.pSeq, seq)
	o.pEndpoint = append(o.pEndpoint, endpoint)
	o.pAttempts = append(o.pAttempts, int32(attempts))
	o.pDelayMs = append(o.pDelayMs, delay.Milliseconds())
	o.pStatus = append(o.pStatus, int32(p.status))
	o.pError = append(o.pError, p.errText)
	o.pResponse = append(o.pResponse, p.response)
	o.pDeadReason = append(o.pDeadReason, deadReason)
	o.pAttempted = append(o.pAttempted, p.attempted)
}

// runCompleter collects finished pairs, decides each finished row's fate and
// writes the outcomes in batches: at AckBatch rows, or AckInterval after the
// first one waiting.
func (r *Relay) runCompleter() {
	defer close(r.completerDone)
	var o outcomes
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		var p *pair
		var open bool
		if armed {
			select {
			case p, open = <-r.results:
			case <-timer.C:
				armed = false
				r.flush(&o)
				continue
			}
		} else {
			p, open = <-r.results
		}
		if !open {
			r.flush(&o)
			return
		}
		j := p.job
		j.remaining--
		if j.remaining > 0 {
			continue
		}
		r.finish(&o, j)
		if o.jobs >= r.cfg.AckBatch {
			if armed && !timer.Stop() {
				<-timer.C
			}
			armed = false
			r.flush(&o)
		} else if !armed {
			timer.Reset(r.cfg.AckInterval)
			armed = true
		}
	}
}

// finish decides what happens to a row whose pairs are all done.
func (r *Relay) finish(o *outcomes, j *job) {
	o.jobs++
	if j.key != "" && len(r.router.Load().ordered) > 0 {
		// Whatever happens to this row, the next parked pair of its key
		// may now be the head.
		o.keys = append(o.keys, j.key)
	}
	if j.lane == retryLane {
		r.finishRetry(o, j)
		return
	}
	if j.invalid != "" || len(j.pairs) == 0 {
		p := &pair{job: j, errText: j.invalid}
		reason := "invalid"
		if j.invalid == "" {
			reason = "unroutable"
			p.errText = "no endpoint subscribes to topic " + j.topic
			if ep := endpointNamed(j); ep != "" {
				p.errText = "endpoint " + ep + " is not configured"
			}
		}
		o.settleSeq = append(o.settleSeq, j.seq)
		o.settleLease = append(o.settleLease, j.lease)
		o.addSettlePair(j.seq, "", j.attempts-1, 0, p, reason)
		r.died(j, "", reason, p.errText)
		return
	}
	allOK, noneTried := true, true
	for i := range j.pairs {
		p := &j.pairs[i]
		allOK = allOK && p.result == resultOK
		noneTried = noneTried && p.result == resultReleased
	}
	switch {
	case allOK:
		o.hotAck = append(o.hotAck, j.seq)
		r.m.commitToAck.Observe(time.Since(j.createdAt).Seconds())
		for i := range j.pairs {
			r.delivered(&j.pairs[i])
		}
		return
	case noneTried:
		o.hotReleaseSeq = append(o.hotReleaseSeq, j.seq)
		o.hotReleaseLease = append(o.hotReleaseLease, j.lease)
		for i := range j.pairs {
			r.released(&j.pairs[i])
		}
		return
	}
	o.settleSeq = append(o.settleSeq, j.seq)
	o.settleLease = append(o.settleLease, j.lease)
	for i := range j.pairs {
		p := &j.pairs[i]
		switch p.result {
		case resultOK:
			r.delivered(p)
		case resultReleased:
			o.addSettlePair(j.seq, p.ep.Name, j.attempts-1, 0, p, "")
			r.released(p)
		case resultDeferred, resultBlocked:
			o.addSettlePair(j.seq, p.ep.Name, j.attempts-1, 0, p, "")
			r.deferred(p)
			o.dueNow = o.dueNow || p.result == resultBlocked
		case resultDead:
			o.addSettlePair(j.seq, p.ep.Name, j.attempts, 0, p, p.deadReason)
			r.died(j, p.ep.Name, p.deadReason, p.errText)
		case resultRetry:
			if reason := r.schedule(p, j.attempts, 0); reason != "" {
				o.addSettlePair(j.seq, p.ep.Name, j.attempts, 0, p, reason)
				r.died(j, p.ep.Name, reason, p.errText)
				continue
			}
			o.addSettlePair(j.seq, p.ep.Name, j.attempts, p.delay, p, "")
		}
	}
}

func endpointNamed(j *job) string {
	if len(j.pairs) == 1 && j.pairs[0].ep != nil {
		return j.pairs[0].ep.Name
	}
	return ""
}

func (r *Relay) finishRetry(o *outcomes, j *job) {
	p := &j.pairs[0]
	endpoint := p.ep.Name
	if j.invalid != "" {
		p.errText = j.invalid
		p.result, p.deadReason = resultDead, "invalid"
	}
	switch p.result {
	case resultOK:
		o.ackSeq = append(o.ackSeq, j.seq)
		o.ackEndpoint = append(o.ackEndpoint, endpoint)
		r.m.commitToAck.Observe(time.Since(j.createdAt).Seconds())
		r.delivered(p)
		return
	case resultDeferred, resultBlocked:
		r.deferred(p)
		r.addReschedule(o, j, p)
		return
	case resultReleased:
		if p.ep.Sender == nil {
			p.delay = orphanDelay
			r.log.Warn().Str("message_id", j.msg.ID).Str("endpoint", endpoint).
				Msg("retry waits for an endpoint that is not configured")
		}
		r.released(p)
		r.addReschedule(o, j, p)
		return
	case resultRetry:
		elapsed := j.elapsed
		if p.probe {
			// A failed probe says the outage goes on: time spent paused
			// never exhausts a message (max_attempts still applies).
			elapsed = 0
		}
		reason := r.schedule(p, j.attempts, elapsed)
		if reason == "" {
			r.addReschedule(o, j, p)
			return
		}
		p.deadReason = reason
	}
	o.burySeq = append(o.burySeq, j.seq)
	o.buryEndpoint = append(o.buryEndpoint, endpoint)
	o.buryLease = append(o.buryLease, j.lease)
	o.buryStatus = append(o.buryStatus, int32(p.status))
	o.buryError = append(o.buryError, p.errText)
	o.buryResp = append(o.buryResp, p.response)
	o.buryReason = append(o.buryReason, p.deadReason)
	r.died(j, endpoint, p.deadReason, p.errText)
}

func (r *Relay) addReschedule(o *outcomes, j *job, p *pair) {
	o.rsSeq = append(o.rsSeq, j.seq)
	o.rsEndpoint = append(o.rsEndpoint, p.ep.Name)
	o.rsLease = append(o.rsLease, j.lease)
	o.rsDelayMs = append(o.rsDelayMs, p.delay.Milliseconds())
	o.rsStatus = append(o.rsStatus, int32(p.status))
	o.rsError = append(o.rsError, p.errText)
	o.rsResponse = append(o.rsResponse, p.response)
	o.rsAttempted = append(o.rsAttempted, p.attempted)
}

// schedule sets p.delay for a failed attempt, or returns "exhausted" when
// the retry policy gives up. It logs the failed attempt.
func (r *Relay) schedule(p *pair, attempt int, elapsed time.Duration) string {
	policy := r.retry.Load()
	delay, ok := policy.NextDelay(attempt, elapsed)
	if !ok {
		return "exhausted"
	}
	if p.retryAfter > 0 {
		delay = max(delay, min(p.retryAfter, policy.MaxDelay()))
	}
	p.delay = delay
	r.stats.retried.Add(1)
	p.ep.metrics.retry.Inc()
	ev := r.log.Warn().Str("message_id", p.job.msg.ID).Str("endpoint", p.ep.Name).Int("attempt", attempt)
	if p.status != 0 {
		ev = ev.Int("status", p.status)
	}
	ev.Str("error", p.errText).Time("next_attempt_at", time.Now().Add(delay)).Msg("delivery failed")
	return ""
}

func (r *Relay) delivered(p *pair) {
	r.stats.delivered.Add(1)
	p.ep.metrics.ok.Inc()
	p.ep.metrics.landed.Inc()
}

func (r *Relay) released(p *pair) {
	r.stats.released.Add(1)
	p.ep.metrics.released.Inc()
}

func (r *Relay) deferred(p *pair) {
	r.stats.deferred.Add(1)
	p.ep.metrics.deferred.Inc()
}

func (r *Relay) died(j *job, endpoint, reason, errText string) {
	r.stats.dead.Add(1)
	r.m.dead.WithLabelValues(reason).Inc()
	if endpoint != "" {
		r.m.attempts.WithLabelValues(endpoint, "dead").Inc()
	}
	lvl := zerolog.ErrorLevel
	if reason == "unroutable" {
		lvl = zerolog.WarnLevel
	}
	r.log.WithLevel(lvl).Str("message_id", j.msg.ID).Str("topic", j.topic).Str("endpoint", endpoint).
		Str("reason", reason).Int("attempts", j.attempts).Str("error", errText).
		Msg("message moved to outbox.dead")
}

// flush writes a batch of outcomes in one round trip.
func (r *Relay) flush(o *outcomes) {
	if o.jobs == 0 {
		return
	}
	defer o.reset()
	b := &pgx.Batch{}
	var fenceChecks []func(pgxRows int64)
	queue := func(sql string, want int, args ...any) {
		b.Queue(sql, args...)
		fenceChecks = append(fenceChecks, func(n int64) {
			if want > 0 && n < int64(want) {
				r.m.fenced.Add(float64(int64(want) - n))
			}
		})
	}
	if len(o.hotAck) > 0 {
		queue(ackHotSQL, 0, o.hotAck)
	}
	if len(o.hotReleaseSeq) > 0 {
		queue(releaseHotSQL, len(o.hotReleaseSeq), o.hotReleaseSeq, o.hotReleaseLease)
	}
	if len(o.settleSeq) > 0 {
		queue(settleHotSQL, 0, o.settleSeq, o.settleLease, o.pSeq, o.pEndpoint, o.pAttempts, o.pDelayMs,
			o.pStatus, o.pError, o.pResponse, o.pDeadReason, o.pAttempted)
	}
	if len(o.ackSeq) > 0 {
		queue(ackRetrySQL, 0, o.ackSeq, o.ackEndpoint)
	}
	if len(o.rsSeq) > 0 {
		queue(rescheduleRetrySQL, len(o.rsSeq), o.rsSeq, o.rsEndpoint, o.rsLease, o.rsDelayMs, o.rsStatus,
			o.rsError, o.rsResponse, o.rsAttempted)
	}
	if len(o.burySeq) > 0 {
		queue(buryRetrySQL, len(o.burySeq), o.burySeq, o.buryEndpoint, o.buryLease, o.buryStatus,
			o.buryError, o.buryResp, o.buryReason)
	}
	if len(o.keys) > 0 {
		b.Queue(promoteSQL, o.keys) // last: it must see this batch's outcomes
		fenceChecks = append(fenceChecks, func(promoted int64) {
			if promoted > 0 {
				// The next message of a key is due now: claim it now, not
				// at the next poll.
				r.retryDue.Store(true)
				signal(r.wake)
			}
		})
	}
	eb := newErrorBackoff()
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := r.sendOutcomes(b, fenceChecks)
		if err == nil {
			if o.dueNow {
				r.retryDue.Store(true)
				signal(r.wake)
			}
			r.m.ackSeconds.Observe(time.Since(start).Seconds())
			eb.recovered(r.log, "ack")
			return
		}
		r.m.dbErrors.WithLabelValues("ack").Inc()
		if attempt == flushAttempts {
			r.log.Error().Err(err).Int("rows", o.jobs).
				Msg("could not record delivery outcomes; the rows will be delivered again when their lease lapses")
			return
		}
		time.Sleep(eb.failed(r.log, err, "ack"))
	}
}

func (r *Relay) sendOutcomes(b *pgx.Batch, fenceChecks []func(int64)) error {
	// Outcomes are written even while the relay stops: a delivered message
	// must not be sent again just because the process is shutting down.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	br := r.pool.SendBatch(ctx, b)
	for _, check := range fenceChecks {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return fmt.Errorf("write outcomes: %w", err)
		}
		check(tag.RowsAffected())
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("write outcomes: %w", err)
	}
	return nil
}
