package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/herald-relay/herald/webhook"
)

// The delivery history: what the relay writes about each attempt
// (outbox.attempts) and each delivered message (outbox.message_log). It is
// written with the outcomes, in their flush and round trip (sendOutcomes),
// through functions that swallow their own errors (migrations/007): a
// history write that fails costs the history of that flush, never an
// outcome.

// AttemptLog says which attempts HistoryConfig logs.
type AttemptLog string

// The values of HistoryConfig.Attempts.
const (
	AttemptLogAll      AttemptLog = "all"
	AttemptLogFailures AttemptLog = "failures"
	AttemptLogOff      AttemptLog = "off"
)

// attemptRows are the attempts of an outcomes batch, one list per column
// of outbox.attempts.
type attemptRows struct {
	at                       []time.Time
	seq                      []int64
	id, endpoint             []string
	attempt                  []int32
	durationMs               []float64
	status                   []int32
	class, errText, response []string
}

func (a *attemptRows) reset() {
	*a = attemptRows{
		at: a.at[:0], seq: a.seq[:0], id: a.id[:0], endpoint: a.endpoint[:0], attempt: a.attempt[:0],
		durationMs: a.durationMs[:0], status: a.status[:0], class: a.class[:0], errText: a.errText[:0],
		response: a.response[:0],
	}
}

func (a *attemptRows) slice(from, to int) attemptRows {
	return attemptRows{
		at: a.at[from:to], seq: a.seq[from:to], id: a.id[from:to], endpoint: a.endpoint[from:to],
		attempt: a.attempt[from:to], durationMs: a.durationMs[from:to], status: a.status[from:to],
		class: a.class[from:to], errText: a.errText[from:to], response: a.response[from:to],
	}
}

// logAttempts adds the attempts made for j's pairs to o, as
// Config.History.Attempts asks. The texts are made storable as those of
// outbox.deliveries are.
func (r *Relay) logAttempts(o *outcomes, j *job) {
	mode := r.cfg.History.Attempts
	if mode == AttemptLogOff {
		return
	}
	a := &o.attempts
	for i := range j.pairs {
		p := &j.pairs[i]
		if !p.attempted || (mode == AttemptLogFailures && p.result == resultOK) {
			continue
		}
		a.at = append(a.at, p.started)
		a.seq = append(a.seq, j.seq)
		a.id = append(a.id, j.msg.ID)
		a.endpoint = append(a.endpoint, p.ep.Name)
		a.attempt = append(a.attempt, int32(j.attempts))
		a.durationMs = append(a.durationMs, float64(p.took.Microseconds())/1000)
		a.status = append(a.status, int32(p.status))
		a.class = append(a.class, p.errClass)
		a.errText = append(a.errText, storable(p.errText))
		a.response = append(a.response, storable(p.response))
	}
}

// historyLog paces the log lines of failed history writes. A flush that
// fails is not retried (its outcomes were written), so the failures come
// at the pace of the flushes, up to hundreds a second: the log says so
// once, then once per interval (doubling from errorBackoffMin to
// errorBackoffMax) with the count since, and once when a write works
// again. The completer's goroutine owns it.
type historyLog struct {
	failures, unlogged int
	step               time.Duration
	next               time.Time
}

// historyFailed counts and logs a history write that failed (table:
// "attempts" or "message_log"); the outcomes of its flush were written.
func (r *Relay) historyFailed(table, pgError string) {
	r.m.historyErrors.WithLabelValues(table).Inc()
	h := &r.historyLog
	h.failures++
	h.unlogged++
	now := time.Now()
	if now.Before(h.next) {
		return
	}
	h.step = min(max(2*h.step, errorBackoffMin), errorBackoffMax)
	h.next = now.Add(h.step)
	r.log.Error().Str("op", "history."+table).Str("error", pgError).Int("failures", h.failures).
		Int("since_last_line", h.unlogged).Dur("next_line_in", h.step).
		Msg("history not written; the delivery outcomes of its flush were")
	h.unlogged = 0
}

// historyWritten notes a history write that worked, and logs the end of
// a run of failures.
func (r *Relay) historyWritten(table string) {
	h := &r.historyLog
	if h.failures == 0 {
		return
	}
	r.log.Info().Str("op", "history."+table).Int("failures", h.failures).Msg("history written again")
	*h = historyLog{}
}

// The error classes of outbox.attempts.error_class (docs/operations.md).
const (
	classStatus   = "status"   // the endpoint answered, not with a 2xx
	classTimeout  = "timeout"  // no answer within the endpoint's timeout
	classConnect  = "connect"  // no connection, or it broke before an answer
	classDNS      = "dns"      // the host's name did not resolve
	classTLS      = "tls"      // the TLS handshake failed
	classRefused  = "refused"  // the address is one delivery must not reach
	classResponse = "response" // an answer Herald could not read (too large, malformed)
	classInvalid  = "invalid"  // the message cannot be sent as it is
	classCanceled = "canceled" // the relay stopped during the attempt
	classOther    = "other"
)

// errorClass classifies a failed attempt; timedOut says that the attempt's
// own deadline passed, relayStopping that the relay cancelled it.
func errorClass(err error, timedOut, relayStopping bool) string {
	var (
		de      *webhook.DeliveryError
		refused *webhook.AddressRefusedError
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		unknown x509.UnknownAuthorityError
		netErr  net.Error
		opErr   *net.OpError
	)
	isDelivery := errors.As(err, &de)
	switch {
	case isDelivery && de.Status != 0:
		return classStatus
	case errors.As(err, &refused):
		return classRefused
	case relayStopping:
		return classCanceled
	case timedOut || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return classTimeout
	case errors.Is(err, context.Canceled):
		return classCanceled
	case errors.As(err, &dnsErr):
		return classDNS
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &unknown):
		return classTLS
	case errors.Is(err, webhook.ErrResponseTooLarge):
		return classResponse
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &opErr):
		return classConnect
	case isDelivery && !de.Retryable:
		return classInvalid
	}
	return classOther
}
