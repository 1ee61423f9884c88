package outbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Message is one outbox message. Topic and Payload are required.
type Message struct {
	// ID is the stable message id sent as webhook-id. Optional: when empty,
	// the database generates one. Set it (see NewID) to make a repeated
	// Enqueue of the same message a no-op while the message is pending.
	ID string
	// Topic routes the message to the endpoints subscribed to it.
	Topic string
	// Payload is the JSON request body, sent byte for byte.
	Payload json.RawMessage
	// Key is the ordering key (for example an aggregate id). Optional.
	Key string
	// Endpoint names the one endpoint to deliver to, bypassing topic
	// routing. Optional.
	Endpoint string
	// Headers are extra HTTP headers sent with this message. Optional.
	// Enqueue adds traceparent and tracestate from ctx's span, unless a
	// traceparent (in any case) is given here.
	Headers map[string]string
}

// DB is what Enqueue writes through: pgx.Tx, *pgx.Conn and *pgxpool.Pool
// all satisfy it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// SQLDB is what EnqueueSQL writes through: *sql.Tx (and *sql.DB, *sql.Conn).
type SQLDB interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// NotifyChannel is the channel relays LISTEN on to be woken when messages
// are committed.
const NotifyChannel = "herald_outbox"

// insertSQL writes a batch in one statement and one round trip, as six
// parallel arrays. Payloads travel as text and are cast to json, which
// validates them and keeps their bytes exactly as written. An empty string
// stands for NULL in the optional columns; ids are always given (see
// columnsOf). ON CONFLICT makes a repeated id a
// no-op while that message is pending.
const insertSQL = `INSERT INTO outbox.messages (id, topic, payload, key, endpoint, headers)
SELECT m.id, m.topic, m.payload::json, nullif(m.key, ''), nullif(m.endpoint, ''), nullif(m.headers, '')::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
     AS m(id, topic, payload, key, endpoint, headers)
ON CONFLICT (id) DO NOTHING`

// insertNotifySQL is insertSQL plus a NOTIFY that wakes the relays at
// commit, in the same statement. PostgreSQL folds identical notifications of
// one transaction into one.
const insertNotifySQL = `WITH ins AS (` + insertSQL + ` RETURNING 1)
SELECT pg_notify('` + NotifyChannel + `', '') FROM (SELECT 1 FROM ins LIMIT 1) AS any_inserted`

// Writer writes messages. The zero value is ready to use and notifies
// relays on commit.
type Writer struct {
	// SkipNotify leaves out the NOTIFY that wakes relays at commit. NOTIFY
	// takes a lock at commit that serialises committing transactions which
	// notified; without it relays find new messages at their next poll
	// (relay.poll_interval) instead of within milliseconds.
	SkipNotify bool
}

// Enqueue writes msgs through db with the default Writer.
//
// Called with a transaction, the messages become visible to the relay only
// when that transaction commits, and are gone if it rolls back: this is what
// makes the outbox transactional. Enqueue never begins or commits.
//
// When ctx holds a valid OpenTelemetry span context, each message stores it
// as W3C traceparent and tracestate headers; the relay's delivery span
// continues that trace and sends its own traceparent to the endpoint.
func Enqueue(ctx context.Context, db DB, msgs ...Message) error {
	return Writer{}.Enqueue(ctx, db, msgs...)
}

// EnqueueSQL is Enqueue for services on database/sql: pass the *sql.Tx of
// the business change.
func EnqueueSQL(ctx context.Context, db SQLDB, msgs ...Message) error {
	return Writer{}.EnqueueSQL(ctx, db, msgs...)
}

// Enqueue writes msgs through db in one round trip. See the package
// function Enqueue.
func (w Writer) Enqueue(ctx context.Context, db DB, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	cols, err := columnsOf(msgs, traceOf(ctx))
	if err != nil {
		return err
	}
	if _, err := db.Exec(ctx, w.statement(), cols.ids, cols.topics, cols.payloads, cols.keys, cols.endpoints, cols.headers); err != nil {
		return fmt.Errorf("enqueue %d messages: %w", len(msgs), err)
	}
	return nil
}

// EnqueueSQL writes msgs through a database/sql transaction in one round
// trip. See the package function Enqueue.
func (w Writer) EnqueueSQL(ctx context.Context, db SQLDB, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	cols, err := columnsOf(msgs, traceOf(ctx))
	if err != nil {
		return err
	}
	// Array literals are plain strings, which every database/sql driver
	// passes through.
	if _, err := db.ExecContext(ctx, w.statement(), arrayLiteral(cols.ids), arrayLiteral(cols.topics),
		arrayLiteral(cols.payloads), arrayLiteral(cols.keys), arrayLiteral(cols.endpoints), arrayLiteral(cols.headers)); err != nil {
		return fmt.Errorf("enqueue %d messages: %w", len(msgs), err)
	}
	return nil
}

func (w Writer) statement() string {
	if w.SkipNotify {
		return insertSQL
	}
	return insertNotifySQL
}

// NewID returns a new message id in Herald's format, for services that want
// to know or fix a message's id before enqueueing it: "msg_" and 32 hex
// digits, the time in microseconds and then random ones, like the ids the
// database generates (time-ordered ids keep the unique index's inserts at
// its right edge).
func NewID() string {
	var b [16]byte
	micros := uint64(time.Now().UnixMicro())
	for i := 6; i >= 0; i-- { // 56 bits: 14 hex digits
		b[i] = byte(micros)
		micros >>= 8
	}
	_, _ = rand.Read(b[7:])
	return "msg_" + hex.EncodeToString(b[:])
}

// ErrInvalidMessage is wrapped by Enqueue's errors for a message that cannot
// be written.
var ErrInvalidMessage = errors.New("invalid outbox message")

type columns struct {
	ids, topics, payloads, keys, endpoints, headers []string
}

// traceHeaders is the trace context Enqueue stores with each message.
type traceHeaders struct {
	parent, state string // empty parent: none
}

// traceOf returns the W3C trace context of ctx's span. It uses the
// TraceContext propagator itself, not the global one: the relay reads
// exactly these two headers, whatever the producer's process has set up.
func traceOf(ctx context.Context) traceHeaders {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return traceHeaders{}
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return traceHeaders{parent: c["traceparent"], state: c["tracestate"]}
}

// with returns h plus the trace headers, or h itself when there are none
// or h has a traceparent of its own.
func (t traceHeaders) with(h map[string]string) map[string]string {
	if t.parent == "" {
		return h
	}
	for name := range h {
		if strings.EqualFold(name, "traceparent") {
			return h
		}
	}
	out := make(map[string]string, len(h)+2)
	for name, v := range h {
		if !strings.EqualFold(name, "tracestate") {
			out[name] = v
		}
	}
	out["traceparent"] = t.parent
	if t.state != "" {
		out["tracestate"] = t.state
	}
	return out
}

func columnsOf(msgs []Message, tr traceHeaders) (columns, error) {
	n := len(msgs)
	// Each keyed insert takes its key's lock (see migrations/003); taking
	// them in one order keeps concurrent batches from deadlocking. The sort
	// is stable, so one key's messages keep their order.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return msgs[order[a]].Key < msgs[order[b]].Key })
	c := columns{
		ids: make([]string, n), topics: make([]string, n), payloads: make([]string, n),
		keys: make([]string, n), endpoints: make([]string, n), headers: make([]string, n),
	}
	for i, src := range order {
		m := &msgs[src]
		if err := validate(m); err != nil {
			return columns{}, fmt.Errorf("enqueue: message %d: %w", src, err)
		}
		c.ids[i], c.topics[i], c.payloads[i] = m.ID, m.Topic, string(m.Payload)
		if m.ID == "" {
			c.ids[i] = NewID() // the same format as the column's default
		}
		c.keys[i], c.endpoints[i] = m.Key, m.Endpoint
		if headers := tr.with(m.Headers); len(headers) > 0 {
			h, err := json.Marshal(headers)
			if err != nil {
				return columns{}, fmt.Errorf("enqueue: message %d: headers: %w", src, err)
			}
			c.headers[i] = string(h)
		}
	}
	return c, nil
}

// arrayLiteral renders a PostgreSQL text[] literal: every element quoted,
// with backslash and double quote escaped.
func arrayLiteral(elems []string) string {
	var b strings.Builder
	size := 2
	for _, e := range elems {
		size += len(e) + 3
	}
	b.Grow(size)
	b.WriteByte('{')
	for i, e := range elems {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := 0; j < len(e); j++ {
			if e[j] == '"' || e[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(e[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func validate(m *Message) error {
	if m.Topic == "" {
		return fmt.Errorf("%w: topic is empty", ErrInvalidMessage)
	}
	if len(m.Payload) == 0 {
		return fmt.Errorf("%w: payload is empty (topic %q)", ErrInvalidMessage, m.Topic)
	}
	if !json.Valid(m.Payload) {
		return fmt.Errorf("%w: payload is not valid JSON (topic %q)", ErrInvalidMessage, m.Topic)
	}
	return nil
}
