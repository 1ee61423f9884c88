package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-relay/herald/outbox"
)

// DeadListLimitDefault is how many dead messages a face lists unless told
// otherwise: outbox.dead can hold millions of rows.
const DeadListLimitDefault = 50

// DeadReasons are the reasons a message dies (outbox.dead's CHECK, see
// migrations/001_outbox.sql).
var DeadReasons = []string{"exhausted", "gone", "rejected", "unroutable", "invalid"}

// DeadFilter selects rows of outbox.dead. Every field left zero matches
// every row.
type DeadFilter struct {
	// ID selects the rows of one message id.
	ID string `json:"id,omitempty"`
	// Endpoint selects the rows dead for one endpoint.
	Endpoint string `json:"endpoint,omitempty"`
	// Reason selects one of DeadReasons.
	Reason string `json:"reason,omitempty"`
	// OlderThan selects the rows dead for longer than this.
	OlderThan time.Duration `json:"older_than,omitempty"`
	// Limit caps how many rows are acted on: the newest for ListDead, the
	// oldest for ReplayDead and PurgeDead. 0: every one selected.
	Limit int `json:"limit,omitempty"`
	// All must be set for ReplayDead to act on every dead row (when ID,
	// Endpoint, Reason and OlderThan are all zero), so that a forgotten
	// filter never puts every dead message back.
	All bool `json:"all,omitempty"`
}

// selects reports whether f narrows the rows by what they are, not only by
// how many.
func (f DeadFilter) selects() bool {
	return f.ID != "" || f.Endpoint != "" || f.Reason != "" || f.OlderThan != 0
}

// validate returns a *FilterError naming the first field that no row could
// match or that makes no sense.
func (f DeadFilter) validate() error {
	switch {
	case f.Reason != "" && !slices.Contains(DeadReasons, f.Reason):
		return &FilterError{Field: "reason", Value: f.Reason, Err: errors.New("must be one of " + strings.Join(DeadReasons, ", "))}
	case f.OlderThan < 0:
		return &FilterError{Field: "older_than", Value: f.OlderThan.String(), Err: errors.New("must not be negative")}
	case f.Limit < 0:
		return &FilterError{Field: "limit", Value: fmt.Sprint(f.Limit), Err: errors.New("must not be negative")}
	}
	return nil
}

// args returns f as the named arguments of deadWhere, plus limit.
func (f DeadFilter) args() pgx.NamedArgs {
	return pgx.NamedArgs{
		"id":            f.ID,
		"endpoint":      f.Endpoint,
		"reason":        f.Reason,
		"older_than_ms": f.OlderThan.Milliseconds(),
		"limit":         int64(f.Limit),
	}
}

// FilterError is a filter that cannot be used, naming its field (the json
// name of the DeadFilter field) and value; a face reports it as the
// caller's mistake (a usage error, HTTP 400).
type FilterError struct {
	Field string
	Value string
	Err   error
}

func (e *FilterError) Error() string {
	if e.Value == "" {
		return e.Field + ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s: %v (got %q)", e.Field, e.Err, e.Value)
}

func (e *FilterError) Unwrap() error { return e.Err }

// DeadMessage is one row of outbox.dead, without its payload, headers and
// last response.
type DeadMessage struct {
	DeadID int64  `json:"dead_id" db:"dead_id"`
	Seq    int64  `json:"seq" db:"seq"`
	ID     string `json:"id" db:"id"`
	Topic  string `json:"topic" db:"topic"`
	// Endpoint is "" when the message never had one (unroutable, invalid).
	Endpoint string `json:"endpoint" db:"endpoint"`
	Key      string `json:"key,omitempty" db:"key"`
	Reason   string `json:"reason" db:"reason"`
	Attempts int    `json:"attempts" db:"attempts"`
	// LastStatus is the last HTTP status, nil when none was received.
	LastStatus *int      `json:"last_status" db:"last_status"`
	LastError  string    `json:"last_error,omitempty" db:"last_error"`
	CreatedAt  time.Time `json:"created_at" db:"created_at"`
	DiedAt     time.Time `json:"died_at" db:"died_at"`
}

// ListDead returns the newest dead rows f selects (at most f.Limit; 0:
// every), newest first; never nil.
func ListDead(ctx context.Context, db DB, f DeadFilter) ([]DeadMessage, error) {
	if err := f.validate(); err != nil {
		return nil, fmt.Errorf("list dead: %w", err)
	}
	rows, err := db.Query(ctx, listDeadSQL, f.args())
	if err != nil {
		return nil, fmt.Errorf("list dead: %w", err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[DeadMessage])
	if err != nil {
		return nil, fmt.Errorf("list dead: %w", err)
	}
	return list, nil
}

// CountDead returns how many dead rows f selects (at most f.Limit; 0: no
// cap): how many ListDead would list.
func CountDead(ctx context.Context, db DB, f DeadFilter) (int64, error) {
	if err := f.validate(); err != nil {
		return 0, fmt.Errorf("count dead: %w", err)
	}
	var n int64
	if err := db.QueryRow(ctx, countDeadSQL, f.args()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count dead: %w", err)
	}
	return n, nil
}

// ReplayResult is what a replay did, or would do: how many dead rows it
// put back, and those it left in outbox.dead, with why.
type ReplayResult struct {
	// DryRun is set when nothing was changed (ReplayDeadDryRun).
	DryRun   bool          `json:"dry_run,omitempty"`
	Replayed int           `json:"replayed"`
	Skipped  []SkippedDead `json:"skipped,omitempty"`
}

// SkippedDead is a dead row a replay left in outbox.dead.
type SkippedDead struct {
	DeadID int64  `json:"dead_id" db:"dead_id"`
	ID     string `json:"id" db:"id"`
	// Endpoint is "" when the message never had one.
	Endpoint string `json:"endpoint" db:"endpoint"`
	Why      string `json:"why" db:"why"`
}

// ReplayDead puts back the oldest dead rows f selects (at most f.Limit; 0:
// every), each where it belongs (see replayDeadSQL: a row dead for an
// endpoint goes to the retry lane for that endpoint only, with its original
// seq; one without goes to the hot lane naming the endpoint it named), and
// wakes the relays when it put any back. A row that cannot be put back
// stays in outbox.dead and is reported in Skipped. A filter that selects
// nothing in particular is a *FilterError unless f.All is set.
func ReplayDead(ctx context.Context, db DB, f DeadFilter) (ReplayResult, error) {
	return replayDead(ctx, db, f, false)
}

// ReplayDeadDryRun returns what ReplayDead would do now, counting the rows
// it would put back and reporting those it would skip, without changing
// anything: it replays in a transaction that it rolls back, so the rows
// are judged by the very statement ReplayDead runs. Like any rolled-back
// producer it may leave a gap in the hot lane's seq, which nothing relies
// on, and it holds the selected dead rows' locks until it rolls back.
func ReplayDeadDryRun(ctx context.Context, db DB, f DeadFilter) (ReplayResult, error) {
	return replayDead(ctx, db, f, true)
}

// errDryRun rolls back a dry run's transaction.
var errDryRun = errors.New("dry run")

func replayDead(ctx context.Context, db DB, f DeadFilter, dryRun bool) (ReplayResult, error) {
	if err := f.validate(); err != nil {
		return ReplayResult{}, fmt.Errorf("replay dead: %w", err)
	}
	if !f.selects() && !f.All {
		return ReplayResult{}, fmt.Errorf("replay dead: %w", &FilterError{Field: "all",
			Err: errors.New("must be set to replay every dead message (or give id, endpoint, reason or older_than)")})
	}
	var res ReplayResult
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		res = ReplayResult{}
		rows, err := tx.Query(ctx, replayDeadSQL, f.args())
		if err != nil {
			return err
		}
		outcomes, err := pgx.CollectRows(rows, pgx.RowToStructByName[SkippedDead])
		if err != nil {
			return err
		}
		for _, o := range outcomes {
			if o.Why == "" {
				res.Replayed++
			} else {
				res.Skipped = append(res.Skipped, o)
			}
		}
		switch {
		case dryRun:
			res.DryRun = true
			return errDryRun
		case res.Replayed == 0:
			return nil
		}
		_, err = tx.Exec(ctx, wakeSQL, pgx.NamedArgs{"channel": outbox.NotifyChannel})
		return err
	})
	if err != nil && !(dryRun && errors.Is(err, errDryRun)) {
		return ReplayResult{}, fmt.Errorf("replay dead: %w", err)
	}
	return res, nil
}

// PurgeResult is what a purge did.
type PurgeResult struct {
	// DryRun is set when nothing was deleted (PurgeDeadDryRun).
	DryRun bool  `json:"dry_run,omitempty"`
	Purged int64 `json:"purged"`
}

// purgeLock makes one process at a time purge.
const purgeLock int64 = 0x4865726170757267

// purgeChunk is how many rows one transaction of a purge deletes, so that
// no transaction grows large.
const purgeChunk = 5000

// PurgeDead deletes the dead rows f selects (at most f.Limit; 0: every)
// in chunks, under an advisory lock so that one process at a time does it;
// when another holds the lock it stops with an error wrapping ErrPurgeBusy,
// and res says what it deleted before. f.OlderThan must be set
// (a *FilterError otherwise): a purge never deletes what died a moment ago
// by accident.
func PurgeDead(ctx context.Context, db DB, f DeadFilter) (PurgeResult, error) {
	return PurgeDeadWithProgress(ctx, db, f, nil)
}

// PurgeDeadWithProgress is PurgeDead, calling progress (when not nil) with
// the rows deleted so far after each chunk it commits.
func PurgeDeadWithProgress(ctx context.Context, db DB, f DeadFilter, progress func(purged int64)) (PurgeResult, error) {
	if err := f.validatePurge(); err != nil {
		return PurgeResult{}, fmt.Errorf("purge dead: %w", err)
	}
	var res PurgeResult
	for range 10000 { // at most 50M rows per run
		chunk := int64(purgeChunk)
		if f.Limit > 0 {
			chunk = min(chunk, int64(f.Limit)-res.Purged)
		}
		if chunk <= 0 {
			break
		}
		var n int64
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			var locked bool
			if err := tx.QueryRow(ctx, purgeLockSQL, pgx.NamedArgs{"lock": purgeLock}).Scan(&locked); err != nil {
				return err
			}
			if !locked {
				return ErrPurgeBusy
			}
			args := f.args()
			args["chunk"] = chunk
			tag, err := tx.Exec(ctx, purgeDeadSQL, args)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return res, fmt.Errorf("purge dead: %w", err)
		}
		res.Purged += n
		if progress != nil {
			progress(res.Purged)
		}
		if n < chunk {
			break
		}
	}
	return res, nil
}

// ErrPurgeBusy is PurgeDead's error when another process holds the purge
// lock: the caller learns that the rows were not looked at, rather than
// that none was old enough. A scheduled purge can ignore it.
var ErrPurgeBusy = errors.New("another process is purging dead messages; try again later")

// PurgeDeadDryRun returns how many rows PurgeDead would delete now, and
// deletes nothing.
func PurgeDeadDryRun(ctx context.Context, db DB, f DeadFilter) (PurgeResult, error) {
	if err := f.validatePurge(); err != nil {
		return PurgeResult{}, fmt.Errorf("purge dead: %w", err)
	}
	n, err := CountDead(ctx, db, f)
	if err != nil {
		return PurgeResult{}, err
	}
	return PurgeResult{DryRun: true, Purged: n}, nil
}

// validatePurge is validate, and a purge needs OlderThan.
func (f DeadFilter) validatePurge() error {
	if err := f.validate(); err != nil {
		return err
	}
	if f.OlderThan <= 0 {
		return &FilterError{Field: "older_than", Err: errors.New("must be set")}
	}
	return nil
}
