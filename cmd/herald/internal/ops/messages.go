package ops

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/outbox"
)

// The states of a message for one endpoint, as `herald messages` shows and
// filters them. A message is pending while it waits in the hot lane
// (outbox.messages, new or claimed), retrying while a pair waits in the
// retry lane (outbox.deliveries), dead when a pair is parked in
// outbox.dead, and delivered when outbox.message_log kept it
// (history.messages).
const (
	StatePending   = "pending"
	StateRetrying  = "retrying"
	StateDead      = "dead"
	StateDelivered = "delivered"
)

// MessageStates are the states, in the order a message goes through them.
var MessageStates = []string{StatePending, StateRetrying, StateDead, StateDelivered}

// ErrNoMessage: no lane, no log and no attempt holds the message id.
var ErrNoMessage = errors.New("no such message")

// MessageAttemptsLimit bounds the attempts GetMessage returns (the most
// recent), so that a message retried for days cannot make one answer
// unbounded.
const MessageAttemptsLimit = 1000

// Message is everything Herald knows of one message id: its content, where
// it is for each endpoint, and every attempt logged for it. The same id can
// be in several places at once (a pair retrying for one endpoint while
// another's is dead; a resent copy pending while the original is in the
// log).
type Message struct {
	ID    string `json:"id"`
	Topic string `json:"topic"`
	Key   string `json:"key,omitempty"`
	// Target is the endpoint the message named, "" when it is routed by
	// topic.
	Target  string          `json:"target,omitempty"`
	Payload json.RawMessage `json:"payload"`
	// Headers are the message's own headers, with the values of
	// secret-looking names (see SensitiveHeader) masked.
	Headers   map[string]string `json:"headers,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	// Pending is the hot lane's copy, nil when there is none.
	Pending   *PendingCopy    `json:"pending"`
	Retrying  []RetryingPair  `json:"retrying"`
	Dead      []DeadPair      `json:"dead"`
	Delivered []DeliveredCopy `json:"delivered"`
	// Attempts are in time order; the most recent MessageAttemptsLimit of
	// them, AttemptsOmitted saying how many older ones were left out.
	Attempts        []Attempt `json:"attempts"`
	AttemptsOmitted int64     `json:"attempts_omitted,omitempty"`
}

// PendingCopy is a message waiting in the hot lane.
type PendingCopy struct {
	Seq int64 `json:"seq"`
	// Claims counts the relays' claims of it; more than one means a relay
	// lost its lease mid-delivery.
	Claims int `json:"claims"`
	// LeasedUntil is set while a relay holds it (delivering now).
	LeasedUntil *time.Time `json:"leased_until,omitempty"`
}

// RetryingPair is the retry lane's state of the message for one endpoint.
type RetryingPair struct {
	Endpoint string `json:"endpoint"`
	Attempts int    `json:"attempts"`
	// NextAttemptAt is nil when the pair is parked, waiting for its
	// endpoint (disabled, or an older message of its key) rather than for
	// a time.
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	LastAttemptAt time.Time  `json:"last_attempt_at"`
	LastStatus    *int       `json:"last_status"`
	LastError     string     `json:"last_error,omitempty"`
	LastResponse  string     `json:"last_response,omitempty"`
}

// DeadPair is a row of outbox.dead for the message.
type DeadPair struct {
	DeadID int64 `json:"dead_id"`
	// Endpoint is "" when the message never had one (unroutable, invalid).
	Endpoint     string    `json:"endpoint"`
	Reason       string    `json:"reason"`
	Attempts     int       `json:"attempts"`
	LastStatus   *int      `json:"last_status"`
	LastError    string    `json:"last_error,omitempty"`
	LastResponse string    `json:"last_response,omitempty"`
	DiedAt       time.Time `json:"died_at"`
}

// DeliveredCopy is a row of outbox.message_log for the message.
type DeliveredCopy struct {
	DeliveredAt time.Time `json:"delivered_at"`
	Seq         int64     `json:"seq"`
}

// Attempt is a row of outbox.attempts.
type Attempt struct {
	At         time.Time `json:"at"`
	Endpoint   string    `json:"endpoint"`
	Attempt    int       `json:"attempt"`
	DurationMS float64   `json:"duration_ms"`
	// Status is the HTTP status the endpoint answered, the 2xx of a
	// success too; nil when no response came.
	Status *int `json:"status"`
	// ErrorClass is "" for a success.
	ErrorClass string `json:"error_class,omitempty"`
	Error      string `json:"error,omitempty"`
	Response   string `json:"response,omitempty"`
}

// content is what each place holding a message knows of its content.
type content struct {
	Topic     string          `json:"topic"`
	Key       string          `json:"key"`
	Target    string          `json:"target"`
	Payload   json.RawMessage `json:"payload"`
	Headers   json.RawMessage `json:"headers"`
	CreatedAt time.Time       `json:"created_at"`
}

// messageRow is showMessageSQL's row: one JSON array per place.
type messageRow struct {
	Pending []struct {
		content
		PendingCopy
	} `db:"pending"`
	Retrying []struct {
		content
		RetryingPair
	} `db:"retrying"`
	Dead []struct {
		content
		DeadPair
	} `db:"dead"`
	Delivered []struct {
		content
		DeliveredCopy
	} `db:"delivered"`
	Attempts      []Attempt `db:"attempts"`
	AttemptsTotal int64     `db:"attempts_total"`
}

// GetMessage returns everything known of the message id, read in one
// statement (one snapshot: a message moving between lanes meanwhile is seen
// in one place or the other, never in none), or an error wrapping
// ErrNoMessage. Every lookup goes through an index on id.
func GetMessage(ctx context.Context, db DB, id string) (Message, error) {
	if err := checkID(id); err != nil {
		return Message{}, fmt.Errorf("message: %w", err)
	}
	rows, err := db.Query(ctx, showMessageSQL, pgx.NamedArgs{"id": id, "attempts_limit": MessageAttemptsLimit})
	if err != nil {
		return Message{}, fmt.Errorf("message %s: %w", id, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[messageRow])
	if err != nil {
		return Message{}, fmt.Errorf("message %s: %w", id, err)
	}
	m := Message{ID: id, Retrying: []RetryingPair{}, Dead: []DeadPair{}, Delivered: []DeliveredCopy{}, Attempts: r.Attempts}
	if m.Attempts == nil {
		m.Attempts = []Attempt{}
	}
	m.AttemptsOmitted = r.AttemptsTotal - int64(len(m.Attempts))
	// The content is the same wherever the message is; the most current
	// place gives it.
	var places []content
	for _, p := range r.Pending {
		places = append(places, p.content)
		m.Pending = &p.PendingCopy
	}
	for _, p := range r.Retrying {
		places = append(places, p.content)
		m.Retrying = append(m.Retrying, p.RetryingPair)
	}
	for _, p := range r.Dead {
		places = append(places, p.content)
		m.Dead = append(m.Dead, p.DeadPair)
	}
	for _, p := range r.Delivered {
		places = append(places, p.content)
		m.Delivered = append(m.Delivered, p.DeliveredCopy)
	}
	if len(places) == 0 && len(m.Attempts) == 0 {
		return Message{}, fmt.Errorf("message %s: %w", id, ErrNoMessage)
	}
	if len(places) > 0 {
		c := places[0]
		m.Topic, m.Key, m.Target, m.Payload, m.CreatedAt = c.Topic, c.Key, c.Target, c.Payload, c.CreatedAt
		m.Headers = maskHeaders(c.Headers)
	}
	return m, nil
}

// idMaxLen is the longest message id (messages_id_check).
const idMaxLen = 255

// checkID refuses an id no message can have (empty or longer than
// messages_id_check allows) as a *FilterError, before any query: a face
// passes ids from outside.
func checkID(id string) error {
	if id == "" || len(id) > idMaxLen {
		return &FilterError{Field: "id", Err: fmt.Errorf("must be 1 to %d characters", idMaxLen)}
	}
	return nil
}

// sensitiveHeaderParts are the parts of a header name that mark its value
// as a credential.
var sensitiveHeaderParts = []string{"auth", "token", "secret", "key", "password", "passwd", "cookie",
	"credential", "signature", "session"}

// SensitiveHeader reports whether a header's value is masked when shown:
// its name contains (in any case) auth, token, secret, key, password,
// passwd, cookie, credential, signature or session. Endpoints' static
// headers are masked whatever their names (EndpointView); a message's own
// headers are mostly data (X-Tenant), so only these are.
func SensitiveHeader(name string) bool {
	name = strings.ToLower(name)
	return slices.ContainsFunc(sensitiveHeaderParts, func(p string) bool { return strings.Contains(name, p) })
}

// maskHeaders decodes a message's headers (a JSON object; plain SQL may
// have put values of any JSON type there, shown as their JSON text) and
// masks the values of sensitive names with config.Secret's "[redacted]".
func maskHeaders(raw json.RawMessage) map[string]string {
	var obj map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &obj) != nil || len(obj) == 0 {
		return nil
	}
	out := make(map[string]string, len(obj))
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		var s string
		if json.Unmarshal(obj[k], &s) != nil {
			s = string(obj[k])
		}
		if SensitiveHeader(k) {
			s = config.Secret(s).String()
		}
		out[k] = s
	}
	return out
}

// MessageListLimitDefault is how many messages a face lists unless told
// otherwise; MessageListLimitMax is the most one page holds.
const (
	MessageListLimitDefault = 50
	MessageListLimitMax     = 10000
)

// MessageFilter selects messages for ListMessages. Every field left zero
// matches every message.
type MessageFilter struct {
	// Endpoint selects the pairs of one endpoint. A pending message is
	// routed only when a relay claims it, so it matches only when it names
	// the endpoint itself (outbox.messages.endpoint).
	Endpoint string `json:"endpoint,omitempty"`
	Topic    string `json:"topic,omitempty"`
	// Since and Until select by creation time: Since <= created_at < Until.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// Status is one of MessageStates.
	Status string `json:"status,omitempty"`
	// Limit is the page size: 0 means MessageListLimitDefault.
	Limit int `json:"limit,omitempty"`
	// After is the Next of the previous page.
	After string `json:"after,omitempty"`
}

// MessageSummary is one line of ListMessages: a message in one state, for
// one endpoint when the state is per endpoint.
type MessageSummary struct {
	ID     string `json:"id"`
	Topic  string `json:"topic"`
	Status string `json:"status"`
	// Endpoint is the pair's endpoint (retrying, dead), or the endpoint the
	// message named (pending, delivered); "" when none.
	Endpoint  string    `json:"endpoint"`
	CreatedAt time.Time `json:"created_at"`
	// At is the time of the state: the lease's end (pending and claimed),
	// the next attempt (retrying; nil when parked), died_at (dead),
	// delivered_at (delivered).
	At         *time.Time `json:"at"`
	Attempts   int        `json:"attempts"`
	LastStatus *int       `json:"last_status"`
	LastError  string     `json:"last_error,omitempty"`
	// Rank orders the states of one message within a page (the cursor's
	// tie-break).
	Rank int `json:"-"`
}

// MessageList is a page of ListMessages: newest first; Next, when set, is
// the After of the next page.
type MessageList struct {
	Messages []MessageSummary `json:"messages"`
	Next     string           `json:"next,omitempty"`
}

// cursor is where a page ended: the sort key of its last line.
type cursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"i"`
	Rank      int       `json:"r"`
	Endpoint  string    `json:"e"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// cursorMaxLen bounds a cursor given by a caller: one that ListMessages
// made is far shorter (a time, an id of at most 255 characters, an
// endpoint name of at most 63).
const cursorMaxLen = 1024

func decodeCursor(s string) (cursor, error) {
	var c cursor
	if len(s) > cursorMaxLen {
		return cursor{}, &FilterError{Field: "after", Err: fmt.Errorf("is longer than %d characters", cursorMaxLen)}
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.CreatedAt.IsZero() || c.ID == "" {
		return cursor{}, &FilterError{Field: "after", Value: s, Err: errors.New("is not a cursor of a previous page (its next)")}
	}
	return c, nil
}

func (f MessageFilter) validate() error {
	switch {
	case f.Status != "" && !slices.Contains(MessageStates, f.Status):
		return &FilterError{Field: "status", Value: f.Status, Err: errors.New("must be one of " + strings.Join(MessageStates, ", "))}
	case f.Limit < 0 || f.Limit > MessageListLimitMax:
		return &FilterError{Field: "limit", Value: fmt.Sprint(f.Limit), Err: fmt.Errorf("must be between 0 (the default, %d) and %d", MessageListLimitDefault, MessageListLimitMax)}
	case !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until):
		return &FilterError{Field: "until", Value: f.Until.Format(time.RFC3339), Err: errors.New("must be after since")}
	}
	return nil
}

// ParseTime reads a time given to a filter field (since, until): RFC 3339
// ("2026-12-01T10:00:00Z"), or a duration before now ("24h", "90m"). Its
// error is a *FilterError naming field.
func ParseTime(field, s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, &FilterError{Field: field, Value: s, Err: errors.New("must be an RFC 3339 time (2026-12-01T10:00:00Z) or a duration ago (24h)")}
	}
	return now.Add(-d), nil
}

// ListMessages returns a page of the messages f selects, in every lane and
// in the message log, newest first (by creation time, then id). It pages by
// keyset (f.After), never by offset: a page costs the same however deep.
// See listMessagesSQL for what a page costs.
func ListMessages(ctx context.Context, db DB, f MessageFilter) (MessageList, error) {
	if err := f.validate(); err != nil {
		return MessageList{}, fmt.Errorf("list messages: %w", err)
	}
	limit := cmp.Or(f.Limit, MessageListLimitDefault)
	args := pgx.NamedArgs{
		"status": f.Status, "topic": f.Topic, "endpoint": f.Endpoint, "limit": limit + 1,
		"since": nullTime(f.Since), "until": nullTime(f.Until),
		"has_cursor": f.After != "", "c_at": time.Time{}, "c_id": "", "c_rank": 0, "c_endpoint": "",
	}
	if f.After != "" {
		c, err := decodeCursor(f.After)
		if err != nil {
			return MessageList{}, fmt.Errorf("list messages: %w", err)
		}
		args["c_at"], args["c_id"], args["c_rank"], args["c_endpoint"] = c.CreatedAt, c.ID, c.Rank, c.Endpoint
	}
	rows, err := db.Query(ctx, listMessagesSQL, args)
	if err != nil {
		return MessageList{}, fmt.Errorf("list messages: %w", err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[MessageSummary])
	if err != nil {
		return MessageList{}, fmt.Errorf("list messages: %w", err)
	}
	page := MessageList{Messages: list}
	if len(list) > limit {
		page.Messages = list[:limit]
		last := list[limit-1]
		page.Next = cursor{CreatedAt: last.CreatedAt, ID: last.ID, Rank: last.Rank, Endpoint: last.Endpoint}.encode()
	}
	return page, nil
}

// nullTime is t as a query argument: NULL when zero.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ResendRequest says which message to deliver again, and how.
type ResendRequest struct {
	// ID is the message to resend: a dead or delivered (message log) copy
	// of it gives the content.
	ID string `json:"id"`
	// Endpoint sends the copy to this endpoint only (it must exist in
	// outbox.endpoints). Without it the copy goes where the original went
	// when it named an endpoint (message log), and otherwise to its
	// topic's subscribers, like a new message.
	Endpoint string `json:"endpoint,omitempty"`
	// NewID gives the copy a fresh id, so that receivers that deduplicate
	// on webhook-id take it as a new message. Without it the copy keeps the
	// id, and a receiver that already processed it may ignore it.
	NewID bool `json:"new_id,omitempty"`
}

// ResendResult is what a resend did, or would do.
type ResendResult struct {
	DryRun bool `json:"dry_run,omitempty"`
	// ID is the copy's id (the original's unless NewID).
	ID string `json:"id"`
	// From says where the content came from: "dead" or "delivered".
	From  string `json:"from"`
	Topic string `json:"topic"`
	// Endpoint is where the copy goes, "" for its topic's subscribers.
	Endpoint string `json:"endpoint"`
	// Seq is the copy's place in the hot lane.
	Seq int64 `json:"seq"`
	// StillRetrying names the endpoints for which the id still has a pair
	// in the retry lane: they may get the message twice (with the same id,
	// which they deduplicate).
	StillRetrying []string `json:"still_retrying,omitempty"`
}

// ErrStillPending: a copy with the id waits in the hot lane, where ids are
// unique (messages_id_idx). It will be delivered; resend with NewID to send
// another one anyway.
var ErrStillPending = errors.New("a message with this id is still pending in outbox.messages; it will be delivered (use a new id to send another)")

// resendSource is resendSourceSQL's row.
type resendSource struct {
	From     string          `db:"origin"`
	Topic    string          `db:"topic"`
	Key      *string         `db:"key"`
	Endpoint *string         `db:"endpoint"`
	Payload  json.RawMessage `db:"payload"`
	Headers  json.RawMessage `db:"headers"`
}

// ResendMessage puts a new copy of a dead or delivered message in the hot
// lane, for the relays to deliver like any message, and wakes them. The
// content comes from the most recent dead or logged copy of the id; an id
// with neither is ErrNoMessage, an unknown Endpoint a *FilterError, and an
// id still in the hot lane ErrStillPending. The dead rows stay in
// outbox.dead (`herald dead replay` puts a dead pair back instead).
func ResendMessage(ctx context.Context, db DB, req ResendRequest) (ResendResult, error) {
	return resendMessage(ctx, db, req, false)
}

// ResendMessageDryRun returns what ResendMessage would do now, and changes
// nothing: it resends in a transaction that it rolls back.
func ResendMessageDryRun(ctx context.Context, db DB, req ResendRequest) (ResendResult, error) {
	return resendMessage(ctx, db, req, true)
}

func resendMessage(ctx context.Context, db DB, req ResendRequest, dryRun bool) (ResendResult, error) {
	if err := checkID(req.ID); err != nil {
		return ResendResult{}, fmt.Errorf("resend: %w", err)
	}
	var res ResendResult
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, resendSourceSQL, pgx.NamedArgs{"id": req.ID})
		if err != nil {
			return err
		}
		src, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[resendSource])
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("no dead or delivered copy in outbox.dead or outbox.message_log: %w", ErrNoMessage)
		}
		if err != nil {
			return err
		}
		res = ResendResult{DryRun: dryRun, ID: req.ID, From: src.From, Topic: src.Topic}
		if src.Endpoint != nil {
			res.Endpoint = *src.Endpoint
		}
		if req.Endpoint != "" {
			var exists bool
			if err := tx.QueryRow(ctx, existsSQL, pgx.NamedArgs{"name": req.Endpoint}).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return &FilterError{Field: "endpoint", Value: req.Endpoint, Err: errors.New("no such endpoint in outbox.endpoints")}
			}
			res.Endpoint = req.Endpoint
		}
		rows, err = tx.Query(ctx, retryingEndpointsSQL, pgx.NamedArgs{"id": req.ID})
		if err != nil {
			return err
		}
		retrying, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(retrying) > 0 {
			res.StillRetrying = retrying
		}
		if req.NewID {
			res.ID = outbox.NewID()
		}
		err = tx.QueryRow(ctx, resendSQL, pgx.NamedArgs{"id": res.ID, "topic": src.Topic, "payload": src.Payload,
			"key": src.Key, "endpoint": res.Endpoint, "headers": src.Headers}).Scan(&res.Seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrStillPending
		}
		if err != nil {
			return err
		}
		if dryRun {
			return errDryRun
		}
		_, err = tx.Exec(ctx, wakeSQL, pgx.NamedArgs{"channel": outbox.NotifyChannel})
		return err
	})
	if err != nil && !(dryRun && errors.Is(err, errDryRun)) {
		return ResendResult{}, fmt.Errorf("resend %s: %w", req.ID, err)
	}
	return res, nil
}
