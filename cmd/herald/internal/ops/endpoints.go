package ops

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/relay"
)

// EndpointsChannel is the channel every change to outbox.endpoints notifies,
// with the endpoint's name as payload.
const EndpointsChannel = "herald_endpoints"

// DB is what the functions of this package need of a connection:
// *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Source says who manages an endpoint.
type Source string

// The sources of an endpoint.
const (
	SourceConfig Source = "config" // copied from the configuration file by SyncFromConfig
	SourceSQL    Source = "sql"    // written with SQL (the column's default)
	SourceCLI    Source = "cli"    // written by `herald endpoints` or the admin API
)

// DisabledInConfigReason is the disabled_reason of an endpoint created
// disabled because the configuration file says `disabled: true`.
const DisabledInConfigReason = "disabled in the configuration file"

// Errors, matched with errors.Is.
var (
	// ErrNotFound: no endpoint has the name.
	ErrNotFound = errors.New("no such endpoint")
	// ErrExists: AddEndpoint found an endpoint with the name.
	ErrExists = errors.New("endpoint already exists")
	// ErrSourceConflict: the write would take over a row of another source,
	// such as editing an endpoint of the configuration file with the CLI, or
	// a file endpoint named like an endpoint added with SQL.
	ErrSourceConflict = errors.New("endpoint is managed elsewhere")
)

// Endpoint is one row of outbox.endpoints: the endpoint's settings as in
// the configuration file, and its state. Embedded config.Endpoint.Disabled
// is true while DisabledAt is set. Zero Timeout and MaxInFlight and a nil
// PermanentStatuses mean the relay's defaults (config.Endpoint.WithDefaults).
// All signing secrets are in Secrets, newest first; Secret is empty.
type Endpoint struct {
	config.Endpoint
	// DisabledAt is when the endpoint was disabled; zero while enabled.
	DisabledAt time.Time
	// DisabledReason says why, e.g. "breaker open for 1h". May be empty.
	DisabledReason string
	// Source says who manages the endpoint. AddEndpoint and UpsertEndpoint default it to
	// SourceSQL.
	Source Source
	// CreatedAt and UpdatedAt are set by the database.
	CreatedAt, UpdatedAt time.Time
}

// RowError is a row of outbox.endpoints that cannot be read as an
// endpoint: a header value that is not a string, an infinite timestamp.
// The table's CHECKs cannot rule these out cheaply, and plain SQL can write
// them. It names the endpoint and what is wrong, never a header value.
type RowError struct {
	Name string
	Err  error
	// What routes messages to the endpoint, always readable: a relay keeps
	// routing to the endpoint and holds its messages until the row is
	// mended, instead of losing them to its absence.
	Topics              []string
	Ordered, OnDeadSkip bool
}

func (e RowError) Error() string { return "endpoint " + e.Name + ": " + e.Err.Error() }

func (e RowError) Unwrap() error { return e.Err }

// MarshalJSON gives the endpoint's name and what is wrong with its row, as
// Error does: {"name": …, "error": …}.
func (e RowError) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name  string `json:"name"`
		Error string `json:"error"`
	}{e.Name, e.Err.Error()})
}

// row is how an Endpoint is scanned: into types that take any value the
// table can hold, so that one odd row never fails the scan of the others
// (pgx ends a whole result at the first value it cannot scan). endpoint
// then checks what they hold.
type row struct {
	Name              string             `db:"name"`
	URL               string             `db:"url"`
	Secrets           []string           `db:"secrets"`
	Topics            []string           `db:"topics"`
	Headers           []byte             `db:"headers"` // JSON text; NULL: nil
	TimeoutMS         *int               `db:"timeout_ms"`
	MaxInFlight       *int               `db:"max_in_flight"`
	RateLimit         float64            `db:"rate_limit"`
	RateBurst         int                `db:"rate_burst"`
	Ordered           bool               `db:"ordered"`
	OnDead            string             `db:"on_dead"`
	PermanentStatuses []int              `db:"permanent_statuses"`
	FollowRedirects   bool               `db:"follow_redirects"`
	TLSCAFile         *string            `db:"tls_ca_file"`
	TLSCertFile       *string            `db:"tls_cert_file"`
	TLSKeyFile        *string            `db:"tls_key_file"`
	TLSMinVersion     *string            `db:"tls_min_version"`
	Format            *string            `db:"format"`
	CloudEventsSource *string            `db:"cloudevents_source"`
	DisabledAt        pgtype.Timestamptz `db:"disabled_at"`
	DisabledReason    *string            `db:"disabled_reason"`
	Source            string             `db:"source"`
	CreatedAt         pgtype.Timestamptz `db:"created_at"`
	UpdatedAt         pgtype.Timestamptz `db:"updated_at"`
}

func (r *row) endpoint() (Endpoint, error) {
	headers, err := decodeHeaders(r.Headers)
	if err != nil {
		return Endpoint{}, RowError{Name: r.Name, Err: err}
	}
	var disabledAt, createdAt, updatedAt time.Time
	for _, c := range []struct {
		column string
		ts     pgtype.Timestamptz
		to     *time.Time
	}{{"disabled_at", r.DisabledAt, &disabledAt}, {"created_at", r.CreatedAt, &createdAt}, {"updated_at", r.UpdatedAt, &updatedAt}} {
		if c.ts.InfinityModifier != pgtype.Finite {
			return Endpoint{}, RowError{Name: r.Name, Err: fmt.Errorf("%s: must be a finite time (got %s)", c.column, c.ts.InfinityModifier)}
		}
		*c.to = c.ts.Time // NULL: zero
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	e := Endpoint{
		Endpoint: config.Endpoint{
			Name:              r.Name,
			URL:               r.URL,
			Topics:            r.Topics,
			RateLimit:         r.RateLimit,
			RateBurst:         r.RateBurst,
			Ordered:           r.Ordered,
			OnDead:            r.OnDead,
			PermanentStatuses: r.PermanentStatuses,
			FollowRedirects:   r.FollowRedirects,
			TLS: config.EndpointTLS{
				CAFile: deref(r.TLSCAFile), CertFile: deref(r.TLSCertFile),
				KeyFile: deref(r.TLSKeyFile), MinVersion: deref(r.TLSMinVersion),
			},
			Format:            deref(r.Format),
			CloudEventsSource: deref(r.CloudEventsSource),
			Headers:           headers,
			Disabled:          r.DisabledAt.Valid,
		},
		DisabledAt:     disabledAt,
		DisabledReason: deref(r.DisabledReason),
		Source:         Source(r.Source),
		CreatedAt:      createdAt,
		UpdatedAt:      updatedAt,
	}
	for _, s := range r.Secrets {
		e.Secrets = append(e.Secrets, config.Secret(s))
	}
	if r.TimeoutMS != nil {
		e.Timeout = time.Duration(*r.TimeoutMS) * time.Millisecond
	}
	if r.MaxInFlight != nil {
		e.MaxInFlight = *r.MaxInFlight
	}
	return e, nil
}

// decodeHeaders reads the headers column: a JSON object (the table's CHECK)
// whose values must be strings. nil or an empty object: no headers. Values
// are secrets, so an error names the headers and the JSON types only.
func decodeHeaders(raw []byte) (map[string]config.Secret, error) {
	if raw == nil {
		return nil, nil
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(raw, &values); err != nil {
		return nil, errors.New("headers: not a JSON object")
	}
	if len(values) == 0 {
		return nil, nil
	}
	out := make(map[string]config.Secret, len(values))
	var bad []string
	for k, v := range values {
		var s string
		if err := json.Unmarshal(v, &s); err != nil || v[0] != '"' { // null unmarshals as "" without an error
			bad = append(bad, k)
			continue
		}
		out[k] = config.Secret(s)
	}
	if len(bad) == 0 {
		return out, nil
	}
	slices.Sort(bad)
	var b strings.Builder
	b.WriteString("headers: values must be strings: ")
	for i, k := range bad {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q ", k)
		if i == 0 {
			b.WriteString("is ")
		}
		b.WriteString(jsonKind(values[k]))
	}
	return nil, errors.New(b.String())
}

// jsonKind names the type of a JSON value other than a string, with its
// article: "a number".
func jsonKind(v json.RawMessage) string {
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// args returns ep's columns as named arguments. Secrets and header values
// are passed as plain strings: config.Secret would encode as "[redacted]".
func args(ep Endpoint) pgx.NamedArgs {
	secrets := []string{} // NOT NULL
	for _, s := range ep.SigningSecrets() {
		secrets = append(secrets, s.Value())
	}
	var headers map[string]string // NULL when empty
	if len(ep.Headers) > 0 {
		headers = make(map[string]string, len(ep.Headers))
		for k, v := range ep.Headers {
			headers[k] = v.Value()
		}
	}
	nullIfZero := func(v int) *int {
		if v == 0 {
			return nil
		}
		return &v
	}
	nullIfEmpty := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	var timeoutMS *int
	if ep.Timeout > 0 {
		timeoutMS = nullIfZero(int(ep.Timeout.Round(time.Millisecond) / time.Millisecond))
	}
	return pgx.NamedArgs{
		"name":               ep.Name,
		"url":                ep.URL,
		"secrets":            secrets,
		"topics":             append([]string{}, ep.Topics...), // NOT NULL
		"headers":            headers,
		"timeout_ms":         timeoutMS,
		"max_in_flight":      nullIfZero(ep.MaxInFlight),
		"rate_limit":         ep.RateLimit,
		"rate_burst":         ep.RateBurst,
		"ordered":            ep.Ordered,
		"on_dead":            cmp.Or(ep.OnDead, config.OnDeadDefault),
		"permanent_statuses": ep.PermanentStatuses, // nil: NULL, the default
		"follow_redirects":   ep.FollowRedirects,
		"tls_ca_file":        nullIfEmpty(ep.TLS.CAFile),
		"tls_cert_file":      nullIfEmpty(ep.TLS.CertFile),
		"tls_key_file":       nullIfEmpty(ep.TLS.KeyFile),
		"tls_min_version":    nullIfEmpty(ep.TLS.MinVersion),
		"format":             nullIfEmpty(ep.Format), // NULL: the default
		"cloudevents_source": nullIfEmpty(ep.CloudEventsSource),
		"disabled":           ep.Disabled,
		"disabled_reason":    nullIfEmpty(ep.DisabledReason),
		"source":             string(cmp.Or(ep.Source, SourceSQL)),
	}
}

// ListEndpoints returns every endpoint, by name. A row that cannot be read as an
// endpoint is left out of eps and reported in skipped, so that one bad row
// never hides the others.
func ListEndpoints(ctx context.Context, db DB) (eps []Endpoint, skipped []RowError, err error) {
	eps, skipped, err = collectEndpoints(db.Query(ctx, listSQL))
	if err != nil {
		return nil, nil, fmt.Errorf("list endpoints: %w", err)
	}
	return eps, skipped, nil
}

// EndpointChanges are the changes to outbox.endpoints up to Mark, a version
// to pass to EndpointChangesSince next (see migrations/008).
type EndpointChanges struct {
	Mark int64
	// Changed are the endpoints inserted or updated, in name order, and
	// Skipped those of them whose rows cannot be read.
	Changed []Endpoint
	Skipped []RowError
	// Deleted names the endpoints deleted, in name order.
	Deleted []string
	// Truncated: the table was truncated; only a full read (ListEndpointsAt)
	// says what is left.
	Truncated bool
}

// ListEndpointsAt is ListEndpoints, with the version it is complete up to
// (read in the same snapshot), for EndpointChangesSince.
func ListEndpointsAt(ctx context.Context, db DB) (eps []Endpoint, skipped []RowError, mark int64, err error) {
	err = inSnapshot(ctx, db, []string{markSQL, listSQL}, nil, func(br pgx.BatchResults) error {
		if err := br.QueryRow().Scan(&mark); err != nil {
			return err
		}
		eps, skipped, err = collectEndpoints(br.Query())
		return err
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("list endpoints: %w", err)
	}
	return eps, skipped, mark, nil
}

// EndpointChangesSince reads what changed in outbox.endpoints after
// version mark (from ListEndpointsAt or an earlier EndpointChangesSince),
// in one snapshot: its cost grows with the changes, not with the table.
func EndpointChangesSince(ctx context.Context, db DB, mark int64) (EndpointChanges, error) {
	var c EndpointChanges
	since := pgx.NamedArgs{"mark": mark}
	err := inSnapshot(ctx, db, []string{markSQL, changedSinceSQL, deletedSinceSQL}, []any{nil, since, since}, func(br pgx.BatchResults) error {
		if err := br.QueryRow().Scan(&c.Mark); err != nil {
			return err
		}
		var err error
		if c.Changed, c.Skipped, err = collectEndpoints(br.Query()); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		c.Deleted, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return EndpointChanges{}, fmt.Errorf("endpoint changes: %w", err)
	}
	if len(c.Deleted) > 0 && c.Deleted[0] == "" { // no endpoint is named ''
		c.Deleted, c.Truncated = c.Deleted[1:], true
	}
	return c, nil
}

// inSnapshot sends queries (with args[i], when set, as their named
// arguments) in one round trip, in a read-only transaction whose reads
// share one snapshot, and hands their results to read.
func inSnapshot(ctx context.Context, db DB, queries []string, args []any, read func(pgx.BatchResults) error) error {
	var tx pgx.Tx
	var err error
	if p, ok := db.(interface {
		BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
	}); ok {
		tx, err = p.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	} else if tx, err = db.Begin(ctx); err == nil {
		_, err = tx.Exec(ctx, snapshotSQL)
	}
	if err != nil {
		if tx != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	b := &pgx.Batch{}
	for i, q := range queries {
		if i < len(args) && args[i] != nil {
			b.Queue(q, args[i])
		} else {
			b.Queue(q)
		}
	}
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if err := read(br); err != nil {
		return err
	}
	return br.Close()
}

// collectEndpoints reads rows of outbox.endpoints (columns): those that
// cannot be read as endpoints are skipped, each with what routes to it.
func collectEndpoints(rows pgx.Rows, err error) (eps []Endpoint, skipped []RowError, _ error) {
	if err != nil {
		return nil, nil, err
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[row])
	if err != nil {
		return nil, nil, err
	}
	eps = make([]Endpoint, 0, len(rs))
	for i := range rs {
		ep, err := rs[i].endpoint()
		var re RowError
		if errors.As(err, &re) {
			re.Topics, re.Ordered, re.OnDeadSkip = rs[i].Topics, rs[i].Ordered, rs[i].OnDead == string(config.OnDeadSkip)
			skipped = append(skipped, re)
			continue
		}
		eps = append(eps, ep)
	}
	return eps, skipped, nil
}

// GetEndpoint returns the endpoint called name, or an error wrapping ErrNotFound.
func GetEndpoint(ctx context.Context, db DB, name string) (Endpoint, error) {
	rows, err := db.Query(ctx, getSQL, pgx.NamedArgs{"name": name})
	if err != nil {
		return Endpoint{}, fmt.Errorf("get endpoint %s: %w", name, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[row])
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, fmt.Errorf("endpoint %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("get endpoint %s: %w", name, err)
	}
	return r.endpoint()
}

// validate checks ep with config.ValidateEndpoint, with the defaults of an
// empty delivery section (a zero Timeout is valid: it means
// delivery.timeout).
func validate(ep Endpoint) error {
	if err := config.ValidateEndpoint(ep.Endpoint, config.Delivery{}); err != nil {
		return fmt.Errorf("endpoint %s: %w", ep.Name, err)
	}
	switch ep.Source {
	case "", SourceConfig, SourceSQL, SourceCLI:
	default:
		return fmt.Errorf("endpoint %s: source must be config, sql or cli (got %q)", ep.Name, ep.Source)
	}
	return nil
}

// AddEndpoint creates ep after checking it with config.ValidateEndpoint; an
// endpoint with the same name is an error wrapping ErrExists. An empty
// Source means SourceSQL. A Disabled ep is created disabled, with
// DisabledReason.
func AddEndpoint(ctx context.Context, db DB, ep Endpoint) error {
	if err := validate(ep); err != nil {
		return err
	}
	tag, err := db.Exec(ctx, insertSQL, args(ep))
	if err != nil {
		return fmt.Errorf("add endpoint %s: %w", ep.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("endpoint %s: %w", ep.Name, ErrExists)
	}
	return nil
}

// UpsertEndpoint creates ep, or replaces every setting and the state of the
// endpoint with its name, after checking it with config.ValidateEndpoint.
// An empty Source means SourceSQL. Disabled sets or clears the disabled
// state (keeping DisabledAt while it stays disabled). Neither an endpoint
// of the configuration file nor ep of SourceConfig may replace a row of
// another source: that is an error wrapping ErrSourceConflict. Writing the
// values already stored changes nothing and notifies no one.
func UpsertEndpoint(ctx context.Context, db DB, ep Endpoint) error {
	if err := validate(ep); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSQL); err != nil {
			return fmt.Errorf("upsert endpoint %s: %w", ep.Name, err)
		}
		var current Source
		err := tx.QueryRow(ctx, sourceSQL, pgx.NamedArgs{"name": ep.Name}).Scan(&current)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("upsert endpoint %s: %w", ep.Name, err)
		default:
			if err := checkSource(ep.Name, current, cmp.Or(ep.Source, SourceSQL)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, upsertSQL, args(ep)); err != nil {
			return fmt.Errorf("upsert endpoint %s: %w", ep.Name, err)
		}
		return nil
	})
}

// checkSource refuses a write of source to a row of source current when
// exactly one of them is SourceConfig.
func checkSource(name string, current, source Source) error {
	if (current == SourceConfig) == (source == SourceConfig) {
		return nil
	}
	if current == SourceConfig {
		return fmt.Errorf("endpoint %s: %w: it comes from the configuration file; change it there", name, ErrSourceConflict)
	}
	return fmt.Errorf("endpoint %s: %w: it was added with %s (source %s), not by the configuration file", name, ErrSourceConflict, current, current)
}

// UpdateEndpoint changes the endpoint called name in one transaction: it reads it,
// calls change on it, checks the result with config.ValidateEndpoint and
// writes it. change may alter settings, Disabled and DisabledReason, and
// Source between SourceSQL and SourceCLI, but not Name. An endpoint of the
// configuration file cannot be updated (ErrSourceConflict); a missing one
// is ErrNotFound. It returns the endpoint as stored.
func UpdateEndpoint(ctx context.Context, db DB, name string, change func(*Endpoint) error) (Endpoint, error) {
	var out Endpoint
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSQL); err != nil {
			return fmt.Errorf("update endpoint %s: %w", name, err)
		}
		ep, err := GetEndpoint(ctx, tx, name)
		if err != nil {
			return err
		}
		current := ep.Source
		if current == SourceConfig {
			return checkSource(name, current, SourceCLI)
		}
		if err := change(&ep); err != nil {
			return err
		}
		if ep.Name != name {
			return fmt.Errorf("endpoint %s: cannot be renamed (add %s and remove %s instead)", name, ep.Name, name)
		}
		if err := validate(ep); err != nil {
			return err
		}
		if err := checkSource(name, current, cmp.Or(ep.Source, SourceSQL)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, upsertSQL, args(ep)); err != nil {
			return fmt.Errorf("update endpoint %s: %w", name, err)
		}
		out, err = GetEndpoint(ctx, tx, name)
		return err
	})
	return out, err
}

// RemoveEndpoint deletes the endpoint called name, and only that row: messages and
// deliveries owed to it stay in the outbox, for the relays to treat like
// those of any unknown endpoint. A
// missing endpoint is ErrNotFound; one of the configuration file is
// ErrSourceConflict (remove it from the file instead).
func RemoveEndpoint(ctx context.Context, db DB, name string) error {
	tag, err := db.Exec(ctx, removeSQL, pgx.NamedArgs{"name": name})
	if err != nil {
		return fmt.Errorf("remove endpoint %s: %w", name, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var source Source
	err = db.QueryRow(ctx, sourceSQL, pgx.NamedArgs{"name": name}).Scan(&source)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("endpoint %s: %w", name, ErrNotFound)
	case err != nil:
		return fmt.Errorf("remove endpoint %s: %w", name, err)
	}
	return fmt.Errorf("endpoint %s: %w: it comes from the configuration file; remove it there", name, ErrSourceConflict)
}

// DisableEndpoint disables the endpoint called name, whatever its source, with a
// reason (may be empty). Disabling a disabled endpoint keeps DisabledAt and
// replaces the reason. A missing endpoint is ErrNotFound.
func DisableEndpoint(ctx context.Context, db DB, name, reason string) error {
	return setState(ctx, db, "disable", name, disableSQL, pgx.NamedArgs{"name": name, "reason": reason, "version": relay.AlertVersion})
}

// EnableEndpoint enables the endpoint called name, whatever its source; enabling an
// enabled endpoint changes nothing. A missing endpoint is ErrNotFound.
func EnableEndpoint(ctx context.Context, db DB, name string) error {
	return setState(ctx, db, "enable", name, enableSQL, pgx.NamedArgs{"name": name, "version": relay.AlertVersion})
}

func setState(ctx context.Context, db DB, op, name, sql string, sqlArgs pgx.NamedArgs) error {
	var changed int
	if err := db.QueryRow(ctx, sql, sqlArgs).Scan(&changed); err != nil {
		return fmt.Errorf("%s endpoint %s: %w", op, name, err)
	}
	if changed > 0 {
		return nil
	}
	var exists bool
	if err := db.QueryRow(ctx, existsSQL, pgx.NamedArgs{"name": name}).Scan(&exists); err != nil {
		return fmt.Errorf("%s endpoint %s: %w", op, name, err)
	}
	if !exists {
		return fmt.Errorf("endpoint %s: %w", name, ErrNotFound)
	}
	return nil // already in that state
}

// SyncFromConfig makes the endpoints of source config match eps, the
// endpoints of a parsed (so validated) configuration file, in one
// transaction: each is created or has its settings replaced, keeping its
// disabled state (a new one starts disabled if its Disabled is set), and
// rows of source config whose name is not in eps are deleted. Rows of other
// sources are never touched: a name of eps held by one is an error wrapping
// ErrSourceConflict that names every such endpoint, and nothing is written.
// Rows that are already up to date are not written, so a sync that changes
// nothing notifies no relay.
func SyncFromConfig(ctx context.Context, db DB, eps []config.Endpoint) error {
	names := make([]string, len(eps))
	for i, e := range eps {
		names[i] = e.Name
	}
	slices.Sort(names)
	if i := firstDuplicate(names); i >= 0 {
		return fmt.Errorf("sync endpoints: %s is in the configuration twice", names[i])
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSQL); err != nil {
			return fmt.Errorf("sync endpoints: %w", err)
		}
		if err := syncConflicts(ctx, tx, names); err != nil {
			return err
		}
		b := &pgx.Batch{}
		for _, e := range eps {
			ep := Endpoint{Endpoint: e, Source: SourceConfig}
			if e.Disabled {
				ep.DisabledReason = DisabledInConfigReason
			}
			b.Queue(syncUpsertSQL, args(ep))
		}
		b.Queue(syncDeleteSQL, pgx.NamedArgs{"names": names})
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("sync endpoints: %w", err)
		}
		return nil
	})
}

// syncConflicts returns an error naming the endpoints of names held by rows
// of another source than config.
func syncConflicts(ctx context.Context, tx pgx.Tx, names []string) error {
	rows, err := tx.Query(ctx, syncConflictsSQL, pgx.NamedArgs{"names": names})
	if err != nil {
		return fmt.Errorf("sync endpoints: %w", err)
	}
	type conflict struct {
		Name   string `db:"name"`
		Source string `db:"source"`
	}
	cs, err := pgx.CollectRows(rows, pgx.RowToStructByName[conflict])
	if err != nil {
		return fmt.Errorf("sync endpoints: %w", err)
	}
	if len(cs) == 0 {
		return nil
	}
	var list string
	for i, c := range cs {
		if i > 0 {
			list += ", "
		}
		list += fmt.Sprintf("%s (source %s)", c.Name, c.Source)
	}
	return fmt.Errorf("sync endpoints: %w: the configuration file names endpoints that were added with SQL or the CLI: %s; rename them in the file or remove those rows",
		ErrSourceConflict, list)
}

func firstDuplicate(sorted []string) int {
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return i
		}
	}
	return -1
}

// EndpointsVersion returns a number that changes, in the same transaction, with
// every change to outbox.endpoints, and only goes up: a relay that polls it
// and re-reads the endpoints when it differs misses no change. It is a
// single-row read.
func EndpointsVersion(ctx context.Context, db DB) (int64, error) {
	var v int64
	if err := db.QueryRow(ctx, versionSQL).Scan(&v); err != nil {
		return 0, fmt.Errorf("endpoints version: %w", err)
	}
	return v, nil
}
