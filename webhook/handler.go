package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// HeaderDuplicate is set to "true" on the answer to a message whose id was
// already processed.
const HeaderDuplicate = "Webhook-Duplicate"

// RequestVerifier authenticates a request and returns its body. *Verifier
// satisfies it.
type RequestVerifier interface {
	Verify(r *http.Request) (body []byte, err error)
}

// Received is a verified message as handed to a HandlerFunc.
type Received struct {
	// ID is the webhook-id header: Herald's message id, stable across
	// retries.
	ID string
	// Timestamp is the webhook-timestamp header: when this attempt was
	// signed. Zero if the header is absent or malformed.
	Timestamp time.Time
	// Body is the raw request body.
	Body []byte
	// Header is the request's header. Treat it as read-only.
	Header http.Header
}

// HandlerFunc applies one message within tx. Returning nil commits tx,
// recording the message as processed; returning an error rolls it back so
// that the sender's retry is processed afresh.
type HandlerFunc[T Tx] func(ctx context.Context, tx T, msg *Received) error

// StatusError is an error a HandlerFunc returns to choose the HTTP status of
// the answer; any other error answers 500. The transaction is rolled back
// whatever the status. Herald retries every status except 410 Gone and
// those configured as permanent for the endpoint; never answer 410, which
// asks Herald to stop calling the endpoint altogether.
type StatusError struct {
	Status int
	Err    error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("status %d: %v", e.Status, e.Err)
}

func (e *StatusError) Unwrap() error { return e.Err }

// Outcome describes how a Handler answered one request, for logs and metrics.
type Outcome struct {
	// ID is the webhook-id header, possibly empty on a rejected request.
	ID string
	// Body is the verified body, also on duplicates; nil if verification
	// failed. Log it only where payloads are known to be safe to log.
	Body []byte
	// Status is the HTTP status answered.
	Status int
	// Duplicate is true if the id had already been processed, in which
	// case the HandlerFunc was not called.
	Duplicate bool
	// Err is why the request failed verification, the store failed or the
	// HandlerFunc failed; nil on success and on duplicates.
	Err error
	// Rejected is true if verification failed.
	Rejected bool
}

// HandlerOption configures a Handler.
type HandlerOption func(*handlerOptions)

type handlerOptions struct {
	observe func(*http.Request, Outcome)
}

// ObserveOutcomes makes the Handler call fn once per request, after
// answering. fn must be safe for concurrent use.
func ObserveOutcomes(fn func(r *http.Request, o Outcome)) HandlerOption {
	return func(o *handlerOptions) { o.observe = fn }
}

// Handler is an http.Handler that receives webhooks effectively once:
//
//  1. It verifies the request; failures answer 401 (missing or bad
//     signature, timestamp out of tolerance), 400 (malformed timestamp or
//     unreadable body) or 413 (body too large).
//  2. It claims the message id in the Store. An id already processed answers
//     200 with "Webhook-Duplicate: true" and does not call the HandlerFunc.
//  3. It calls the HandlerFunc in the claim's unit of work. On success it
//     commits and answers 204; on error it rolls back and answers 500 (or
//     the StatusError's status), so the sender retries.
//
// Answers never echo a secret or an error's text.
type Handler[T Tx] struct {
	verifier RequestVerifier
	store    Store[T]
	fn       HandlerFunc[T]
	opts     handlerOptions
}

// NewHandler returns a Handler verifying with v, deduplicating with store
// and applying messages with fn. With a PostgresStore, fn receives the
// pgx.Tx in which the message id is recorded.
func NewHandler[T Tx](v RequestVerifier, store Store[T], fn HandlerFunc[T], opts ...HandlerOption) *Handler[T] {
	h := &Handler[T]{verifier: v, store: store, fn: fn}
	for _, o := range opts {
		o(&h.opts)
	}
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler[T]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	out := h.serve(w, r)
	if h.opts.observe != nil {
		h.opts.observe(r, out)
	}
}

func (h *Handler[T]) serve(w http.ResponseWriter, r *http.Request) Outcome {
	id := r.Header.Get(HeaderID)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return respond(w, Outcome{ID: id, Status: http.StatusMethodNotAllowed, Rejected: true, Err: errors.New("method not allowed")})
	}
	body, err := h.verifier.Verify(r)
	if err != nil {
		return respond(w, Outcome{ID: id, Status: verifyStatus(err), Rejected: true, Err: err})
	}
	if id == "" {
		return respond(w, Outcome{Status: http.StatusBadRequest, Rejected: true, Err: ErrMissingHeaders})
	}
	msg := &Received{ID: id, Body: body, Header: r.Header}
	if unix, err := parseTimestamp(r.Header.Get(HeaderTimestamp)); err == nil {
		msg.Timestamp = time.Unix(unix, 0)
	}
	out := Outcome{ID: id, Body: body}

	ctx := r.Context()
	tx, duplicate, err := h.store.Begin(ctx, id)
	if err != nil {
		out.Status, out.Err = http.StatusServiceUnavailable, err
		return respond(w, out)
	}
	if duplicate {
		w.Header().Set(HeaderDuplicate, "true")
		out.Status, out.Duplicate = http.StatusOK, true
		return respond(w, out)
	}
	// Also covers a panicking fn; after Commit it is a no-op.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	if err := h.fn(ctx, tx, msg); err != nil {
		out.Status, out.Err = http.StatusInternalServerError, err
		if se, ok := errors.AsType[*StatusError](err); ok && se.Status >= 200 && se.Status <= 599 {
			out.Status = se.Status
		}
		return respond(w, out)
	}
	// The work is done: commit even if the sender hung up meanwhile, so its
	// retry is answered as a duplicate rather than processed again.
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		out.Status, out.Err = http.StatusInternalServerError, fmt.Errorf("commit: %w", err)
		return respond(w, out)
	}
	out.Status = http.StatusNoContent
	return respond(w, out)
}

func respond(w http.ResponseWriter, out Outcome) Outcome {
	if out.Status == http.StatusNoContent || out.Status == http.StatusOK {
		w.WriteHeader(out.Status)
		return out
	}
	// Only the status text: errors may name internals.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(out.Status)
	_, _ = w.Write([]byte(strconv.Itoa(out.Status) + " " + http.StatusText(out.Status) + "\n"))
	return out
}

// verifyStatus maps a verification error to the status answered.
func verifyStatus(err error) int {
	switch {
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrInvalidTimestamp):
		return http.StatusBadRequest
	case errors.Is(err, ErrMissingHeaders),
		errors.Is(err, ErrInvalidSignature),
		errors.Is(err, ErrTimestampTooOld),
		errors.Is(err, ErrTimestampTooNew):
		return http.StatusUnauthorized
	default:
		return http.StatusBadRequest
	}
}
