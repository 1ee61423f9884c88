package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
)

// orphanDelay is how long a retry pair whose endpoint is no longer
// configured waits before it is looked at again. Short: the retry claim
// takes pairs only of the endpoints it serves, so an orphan is claimed
// again only once its endpoint is back, and then it should go at once (it
// waited a minute, which made a removed and re-added endpoint wait too).
const orphanDelay = time.Second

// outcomeWriteTimeout bounds one try at writing a batch of outcomes.
const outcomeWriteTimeout = 30 * time.Second

// maxStoredText bounds each text the relay stores about an attempt (the
// error, the first bytes of the response), whatever a Sender returned.
const maxStoredText = 1024

// outcomes is one batch of finished rows, written in one round trip.
type outcomes struct {
	jobs int
	// marks[i] is how long each list was once job i was added: a batch that
	// PostgreSQL refuses is cut into parts at these boundaries.
	marks []outcomeMark
	// textless: write no error or response text (a part that was refused
	// with them).
	textless bool

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

	attempts attemptRows // the attempt log (history.go)
}

func (o *outcomes) reset() {
	attempts := o.attempts
	attempts.reset()
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
		keys: o.keys[:0], marks: o.marks[:0], attempts: attempts,
	}
}

// outcomeMark is the length of each list of an outcomes batch at a job
// boundary.
type outcomeMark struct {
	hotAck, hotRelease, settle, pairs, ack, reschedule, bury, keys, attempts int
}

func (o *outcomes) mark() outcomeMark {
	return outcomeMark{
		hotAck: len(o.hotAck), hotRelease: len(o.hotReleaseSeq), settle: len(o.settleSeq), pairs: len(o.pSeq),
		ack: len(o.ackSeq), reschedule: len(o.rsSeq), bury: len(o.burySeq), keys: len(o.keys),
		attempts: len(o.attempts.seq),
	}
}

// part returns the outcomes of jobs [from, to) of o, sharing its lists;
// its marks are its own.
func (o *outcomes) part(from, to int) *outcomes {
	var a, b outcomeMark
	if from > 0 {
		a = o.marks[from-1]
	}
	b = o.marks[to-1]
	marks := make([]outcomeMark, 0, to-from)
	for _, m := range o.marks[from:to] {
		marks = append(marks, outcomeMark{
			hotAck: m.hotAck - a.hotAck, hotRelease: m.hotRelease - a.hotRelease, settle: m.settle - a.settle,
			pairs: m.pairs - a.pairs, ack: m.ack - a.ack, reschedule: m.reschedule - a.reschedule,
			bury: m.bury - a.bury, keys: m.keys - a.keys, attempts: m.attempts - a.attempts,
		})
	}
	return &outcomes{
		jobs: to - from, marks: marks, textless: o.textless, dueNow: o.dueNow,
		hotAck:        o.hotAck[a.hotAck:b.hotAck],
		hotReleaseSeq: o.hotReleaseSeq[a.hotRelease:b.hotRelease], hotReleaseLease: o.hotReleaseLease[a.hotRelease:b.hotRelease],
		settleSeq: o.settleSeq[a.settle:b.settle], settleLease: o.settleLease[a.settle:b.settle],
		pSeq: o.pSeq[a.pairs:b.pairs], pEndpoint: o.pEndpoint[a.pairs:b.pairs], pAttempts: o.pAttempts[a.pairs:b.pairs],
		pDelayMs: o.pDelayMs[a.pairs:b.pairs], pStatus: o.pStatus[a.pairs:b.pairs], pError: o.pError[a.pairs:b.pairs],
		pResponse: o.pResponse[a.pairs:b.pairs], pDeadReason: o.pDeadReason[a.pairs:b.pairs], pAttempted: o.pAttempted[a.pairs:b.pairs],
		ackSeq: o.ackSeq[a.ack:b.ack], ackEndpoint: o.ackEndpoint[a.ack:b.ack],
		rsSeq: o.rsSeq[a.reschedule:b.reschedule], rsEndpoint: o.rsEndpoint[a.reschedule:b.reschedule],
		rsLease: o.rsLease[a.reschedule:b.reschedule], rsDelayMs: o.rsDelayMs[a.reschedule:b.reschedule],
		rsStatus: o.rsStatus[a.reschedule:b.reschedule], rsError: o.rsError[a.reschedule:b.reschedule],
		rsResponse: o.rsResponse[a.reschedule:b.reschedule], rsAttempted: o.rsAttempted[a.reschedule:b.reschedule],
		burySeq: o.burySeq[a.bury:b.bury], buryEndpoint: o.buryEndpoint[a.bury:b.bury], buryLease: o.buryLease[a.bury:b.bury],
		buryStatus: o.buryStatus[a.bury:b.bury], buryError: o.buryError[a.bury:b.bury], buryResp: o.buryResp[a.bury:b.bury],
		buryReason: o.buryReason[a.bury:b.bury],
		keys:       o.keys[a.keys:b.keys],
		attempts:   o.attempts.slice(a.attempts, b.attempts),
	}
}

// storable makes s fit for a text column: valid UTF-8, no NUL (PostgreSQL
// refuses both, and one refused value would fail a whole batch of
// outcomes), at most maxStoredText bytes, cut between characters.
func storable(s string) string {
	if len(s) <= maxStoredText && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) > maxStoredText {
		cut := maxStoredText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func (o *outcomes) addSettlePair(seq int64, endpoint string, attempts int, delay time.Duration, p *pair, deadReason string) {
	o.pSeq = append(o.pSeq, seq)
	o.pEndpoint = append(o.pEndpoint, endpoint)
	o.pAttempts = append(o.pAttempts, int32(attempts))
	o.pDelayMs = append(o.pDelayMs, delay.Milliseconds())
	o.pStatus = append(o.pStatus, int32(p.status))
	o.pError = append(o.pError, storable(p.errText))
	o.pResponse = append(o.pResponse, storable(p.response))
	o.pDeadReason = append(o.pDeadReason, deadReason)
	o.pAttempted = append(o.pAttempted, p.attempted)
}

// runCompleter collects finished pairs, decides each finished row's fate and
// writes the outcomes in batches: at AckBatch rows, or AckInterval after the
// first one waiting.
func (r *Relay) runCompleter() {
	defer close(r.completerDone)
	if r.holdOutcomes != nil {
		<-r.holdOutcomes
	}
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
		o.marks = append(o.marks, o.mark())
		if r.inFlightBytes.Add(-int64(len(j.msg.Body))) < r.cfg.MaxInFlightBytes {
			signal(r.room)
		}
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
	r.logAttempts(o, j)
	if j.key != "" && len(r.router.Load().ordered) > 0 {
		// Whatever happens to this row, the next parked pair of its key
		// may now be the head.
		o.keys = append(o.keys, j.key)
	}
	if j.lane == retryLane {
		r.finishRetry(o, j)
		return
	}
	if len(j.pairs) == 0 {
		// Nothing subscribes to its topic: it dies as a message of no
		// endpoint (invalid too, if it is; prepare kills the messages that
		// were for an endpoint for each of them).
		p := &pair{job: j, errText: j.invalid}
		reason := "invalid"
		if j.invalid == "" {
			reason = "unroutable"
			p.errText = "no endpoint subscribes to topic " + j.topic
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
			attempts := j.attempts
			if !p.attempted {
				attempts-- // died before any attempt (invalid, unknown endpoint)
			}
			o.addSettlePair(j.seq, p.ep.Name, attempts, 0, p, p.deadReason)
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
	o.buryError = append(o.buryError, storable(p.errText))
	o.buryResp = append(o.buryResp, storable(p.response))
	o.buryReason = append(o.buryReason, p.deadReason)
	r.died(j, endpoint, p.deadReason, p.errText)
}

func (r *Relay) addReschedule(o *outcomes, j *job, p *pair) {
	o.rsSeq = append(o.rsSeq, j.seq)
	o.rsEndpoint = append(o.rsEndpoint, p.ep.Name)
	o.rsLease = append(o.rsLease, j.lease)
	o.rsDelayMs = append(o.rsDelayMs, p.delay.Milliseconds())
	o.rsStatus = append(o.rsStatus, int32(p.status))
	o.rsError = append(o.rsError, storable(p.errText))
	o.rsResponse = append(o.rsResponse, storable(p.response))
	o.rsAttempted = append(o.rsAttempted, p.attempted)
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
	if endpoint != "" && reason != "unroutable" {
		// Not for an unroutable message: its endpoint name comes from a
		// producer's row, and would make a metric series of every typo.
		r.m.attempts.WithLabelValues(r.m.endpointLabel(endpoint), "dead").Inc()
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
	r.writeOutcomes(o, newErrorBackoff())
	if o.dueNow {
		r.retryDue.Store(true)
		signal(r.wake)
	}
}

// writeOutcomes writes o, and keeps at it until it is written: a passing
// error (a lost connection, a restart, a deadlock, a lock timeout) is
// retried with backoff for as long as the relay runs, and until Stop's
// context ends when it stops. A batch PostgreSQL refuses for what it holds
// is cut in halves, so that one bad row never holds back the others; a row
// refused alone is written once more without its texts, and only if that
// fails too is it left to its lease, reported.
func (r *Relay) writeOutcomes(o *outcomes, eb *errorBackoff) {
	for {
		start := time.Now()
		err := r.sendOutcomes(o)
		if err == nil {
			r.m.ackSeconds.Observe(time.Since(start).Seconds())
			eb.recovered(r.log, "ack")
			return
		}
		r.m.dbErrors.WithLabelValues("ack").Inc()
		switch {
		case r.outcomeCtx.Err() != nil:
			r.unwritten(o, err, "the relay stopped before they could be written")
			return
		case passing(err):
			sleep(r.outcomeCtx, eb.failed(r.log, err, "ack"))
		case o.jobs > 1:
			r.log.Warn().Err(err).Int("rows", o.jobs).Msg("outcome batch refused; writing it in parts")
			half := o.jobs / 2
			r.writeOutcomes(o.part(0, half), eb)
			r.writeOutcomes(o.part(half, o.jobs), eb)
			return
		case !o.textless:
			r.log.Warn().Err(err).Msg("outcome refused; writing it without its error and response texts")
			o.textless = true
		default:
			r.unwritten(o, err, "PostgreSQL refused them")
			return
		}
	}
}

// unwritten reports outcomes the relay gives up writing. Their rows keep
// their lease and are delivered again once it lapses: late, never lost.
func (r *Relay) unwritten(o *outcomes, err error, why string) {
	r.m.unwritten.Add(float64(o.jobs))
	ev := r.log.Error().Err(err).Int("rows", o.jobs)
	if o.jobs == 1 {
		// A job is one row, so one of these holds its seq.
		for _, seqs := range [][]int64{o.hotAck, o.hotReleaseSeq, o.settleSeq, o.ackSeq, o.rsSeq, o.burySeq} {
			if len(seqs) > 0 {
				ev = ev.Int64("seq", seqs[0])
				break
			}
		}
	}
	ev.Msg("delivery outcomes not recorded (" + why + "); their rows will be delivered again when their lease lapses")
}

// passing tells whether a failed write may succeed as it is if tried again:
// anything but an error PostgreSQL raised about the statement or its data.
func passing(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return true // the connection, a timeout, the pool
	}
	switch pgErr.Code[:2] {
	case "08", // connection exception
		"40", // serialization failure, deadlock
		"53", // insufficient resources
		"55", // lock not available, object in use
		"57", // operator intervention: shutdown, cancel, too many connections
		"58": // system error
		return true
	}
	// A prepared statement gone (26000) is prepared again on the next try.
	return pgErr.Code == "26000"
}

// sendOutcomes writes o in one round trip. The batch is built anew for each
// try: pgx keeps the prepared statement a query was bound to in the batch,
// and forgets (deallocates) the statements of a batch that failed, so a
// batch sent twice fails the second time with "prepared statement does not
// exist", as it does on any other connection.
func (r *Relay) sendOutcomes(o *outcomes) error {
	b := &pgx.Batch{}
	var reads []func(pgx.BatchResults) error
	queue := func(sql string, want int, args ...any) {
		b.Queue(sql, args...)
		reads = append(reads, func(br pgx.BatchResults) error {
			tag, err := br.Exec()
			if err == nil && want > 0 && tag.RowsAffected() < int64(want) {
				r.m.fenced.Add(float64(int64(want) - tag.RowsAffected()))
			}
			return err
		})
	}
	text := func(s []string) []string {
		if o.textless {
			return make([]string, len(s))
		}
		return s
	}
	// history reads what a history function returns: NULL, or the error
	// it swallowed.
	history := func(table string) func(pgx.BatchResults) error {
		return func(br pgx.BatchResults) error {
			var failed *string
			if err := br.QueryRow().Scan(&failed); err != nil {
				return err
			}
			if failed != nil {
				r.historyFailed(table, *failed)
			} else {
				r.historyWritten(table)
			}
			return nil
		}
	}
	if len(o.hotAck) > 0 {
		if r.cfg.History.Messages {
			b.Queue(ackLoggedSQL, o.hotAck)
			reads = append(reads, history("message_log"))
		} else {
			queue(ackHotSQL, 0, o.hotAck)
		}
	}
	if len(o.hotReleaseSeq) > 0 {
		queue(releaseHotSQL, len(o.hotReleaseSeq), o.hotReleaseSeq, o.hotReleaseLease)
	}
	// Dead events (docs/alerts.md) are written by the statements that move
	// rows to dead, only while an endpoint subscribes them, and their
	// counts are taken once the whole batch is written.
	budget, alerting := r.deadAlertBudget(time.Now())
	settleBudget, buryBudget := budget, budget
	if len(o.settleSeq) > 0 && len(o.burySeq) > 0 {
		// Neither statement knows what the other writes: they share it.
		settleBudget = (budget + 1) / 2
		buryBudget = budget - settleBudget
	}
	var alerted, unreported int64
	deadAlerts := func(row pgx.Row, want int) error {
		var moved, written, left int64
		err := row.Scan(&moved, &written, &left)
		if err == nil {
			if moved < int64(want) {
				r.m.fenced.Add(float64(int64(want) - moved))
			}
			alerted, unreported = alerted+written, unreported+left
		}
		return err
	}
	if len(o.settleSeq) > 0 {
		args := []any{o.settleSeq, o.settleLease, o.pSeq, o.pEndpoint, o.pAttempts, o.pDelayMs,
			o.pStatus, text(o.pError), text(o.pResponse), o.pDeadReason, o.pAttempted}
		if alerting && slices.ContainsFunc(o.pDeadReason, func(s string) bool { return s != "" }) {
			b.Queue(settleHotAlertingSQL, append(args, int64(settleBudget))...)
			reads = append(reads, func(br pgx.BatchResults) error { return deadAlerts(br.QueryRow(), len(o.settleSeq)) })
		} else {
			b.Queue(settleHotSQL, args...)
			reads = append(reads, func(br pgx.BatchResults) error {
				var settled int64
				err := br.QueryRow().Scan(&settled)
				if err == nil && settled < int64(len(o.settleSeq)) {
					r.m.fenced.Add(float64(int64(len(o.settleSeq)) - settled))
				}
				return err
			})
		}
	}
	if len(o.ackSeq) > 0 {
		if r.cfg.History.Messages {
			b.Queue(ackRetryLoggedSQL, o.ackSeq, o.ackEndpoint)
			reads = append(reads, history("message_log"))
		} else {
			queue(ackRetrySQL, 0, o.ackSeq, o.ackEndpoint)
		}
	}
	if len(o.rsSeq) > 0 {
		queue(rescheduleRetrySQL, len(o.rsSeq), o.rsSeq, o.rsEndpoint, o.rsLease, o.rsDelayMs, o.rsStatus,
			text(o.rsError), text(o.rsResponse), o.rsAttempted)
	}
	if len(o.burySeq) > 0 {
		args := []any{o.burySeq, o.buryEndpoint, o.buryLease, o.buryStatus, text(o.buryError), text(o.buryResp), o.buryReason}
		if alerting {
			b.Queue(buryRetryAlertingSQL, append(args, int64(buryBudget))...)
			reads = append(reads, func(br pgx.BatchResults) error { return deadAlerts(br.QueryRow(), len(o.burySeq)) })
		} else {
			queue(buryRetrySQL, len(o.burySeq), args...)
		}
	}
	if len(o.keys) > 0 {
		b.Queue(promoteSQL, o.keys) // last: it must see this batch's outcomes
		reads = append(reads, func(br pgx.BatchResults) error {
			tag, err := br.Exec()
			if err == nil && tag.RowsAffected() > 0 {
				// The next message of a key is due now: claim it now, not
				// at the next poll.
				r.retryDue.Store(true)
				signal(r.wake)
			}
			return err
		})
	}
	if a := &o.attempts; len(a.seq) > 0 {
		b.Queue(logAttemptsSQL, a.at, a.seq, a.id, a.endpoint, a.attempt, a.durationMs, a.status, a.class,
			a.errText, a.response)
		reads = append(reads, history("attempts"))
	}
	// Outcomes are written even while the relay stops (outcomeCtx ends only
	// when Stop's own context does): a delivered message must not be sent
	// again just because the process is shutting down.
	ctx, cancel := context.WithTimeout(r.outcomeCtx, outcomeWriteTimeout)
	defer cancel()
	br := r.pool.SendBatch(ctx, b)
	for _, read := range reads {
		if err := read(br); err != nil {
			_ = br.Close()
			return fmt.Errorf("write outcomes: %w", err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("write outcomes: %w", err)
	}
	if alerting {
		r.deadAlertsWritten(alerted, unreported)
	}
	return nil
}
