package ops

// The SQL of this package. Every write to outbox.endpoints first locks the
// single row of outbox.endpoints_version (the table's statement trigger does
// it for single statements; transactions here do it explicitly first), so
// writers take turns and never deadlock on endpoint rows. Endpoints are few
// and change rarely: no query here needs an index beyond the primary key.

// columns is every column, in the order of row's fields.
const columns = `name, url, secrets, topics, headers, timeout_ms, max_in_flight, rate_limit, rate_burst,
    ordered, on_dead, permanent_statuses, follow_redirects,
    tls_ca_file, tls_cert_file, tls_key_file, tls_min_version,
    disabled_at, disabled_reason, source, created_at, updated_at`

const listSQL = `SELECT ` + columns + ` FROM outbox.endpoints ORDER BY name`

const getSQL = `SELECT ` + columns + ` FROM outbox.endpoints WHERE name = $1`

// lockSQL serialises writers of outbox.endpoints for the rest of the
// transaction (see migrations/002_endpoints.sql).
const lockSQL = `SELECT version FROM outbox.endpoints_version FOR UPDATE`

const versionSQL = `SELECT version FROM outbox.endpoints_version`

const sourceSQL = `SELECT source FROM outbox.endpoints WHERE name = $1`

// settings are the columns an endpoint's configuration sets, as named
// arguments (see args), without its state (disabled_*) or source.
const settingsColumns = `name, url, secrets, topics, headers, timeout_ms, max_in_flight, rate_limit, rate_burst,
    ordered, on_dead, permanent_statuses, follow_redirects,
    tls_ca_file, tls_cert_file, tls_key_file, tls_min_version`

const settingsValues = `@name, @url, @secrets, @topics, @headers, @timeout_ms, @max_in_flight, @rate_limit, @rate_burst,
    @ordered, @on_dead, @permanent_statuses, @follow_redirects,
    @tls_ca_file, @tls_cert_file, @tls_key_file, @tls_min_version`

const settingsUpdate = `url = excluded.url, secrets = excluded.secrets, topics = excluded.topics,
    headers = excluded.headers, timeout_ms = excluded.timeout_ms, max_in_flight = excluded.max_in_flight,
    rate_limit = excluded.rate_limit, rate_burst = excluded.rate_burst, ordered = excluded.ordered,
    on_dead = excluded.on_dead, permanent_statuses = excluded.permanent_statuses,
    follow_redirects = excluded.follow_redirects, tls_ca_file = excluded.tls_ca_file,
    tls_cert_file = excluded.tls_cert_file, tls_key_file = excluded.tls_key_file,
    tls_min_version = excluded.tls_min_version`

// settingsDiffer is true when the existing row e differs from excluded in
// any setting: an upsert that would change nothing updates no row, so fires
// no trigger and wakes no relay.
const settingsDiffer = `(e.url, e.secrets, e.topics, e.headers, e.timeout_ms, e.max_in_flight, e.rate_limit,
    e.rate_burst, e.ordered, e.on_dead, e.permanent_statuses, e.follow_redirects, e.tls_ca_file,
    e.tls_cert_file, e.tls_key_file, e.tls_min_version)
  IS DISTINCT FROM (excluded.url, excluded.secrets, excluded.topics, excluded.headers, excluded.timeout_ms,
    excluded.max_in_flight, excluded.rate_limit, excluded.rate_burst, excluded.ordered, excluded.on_dead,
    excluded.permanent_statuses, excluded.follow_redirects, excluded.tls_ca_file, excluded.tls_cert_file,
    excluded.tls_key_file, excluded.tls_min_version)`

const insertSQL = `INSERT INTO outbox.endpoints (` + settingsColumns + `, disabled_at, disabled_reason, source)
VALUES (` + settingsValues + `,
    CASE WHEN @disabled::boolean THEN now() END,
    CASE WHEN @disabled::boolean THEN @disabled_reason::text END,
    @source)
ON CONFLICT (name) DO NOTHING`

// upsertSQL writes every column; disabled_at keeps its time while the
// endpoint stays disabled.
const upsertSQL = `INSERT INTO outbox.endpoints AS e (` + settingsColumns + `, disabled_at, disabled_reason, source)
VALUES (` + settingsValues + `,
    CASE WHEN @disabled::boolean THEN now() END,
    CASE WHEN @disabled::boolean THEN @disabled_reason::text END,
    @source)
ON CONFLICT (name) DO UPDATE SET ` + settingsUpdate + `,
    disabled_at = CASE WHEN @disabled::boolean THEN coalesce(e.disabled_at, now()) END,
    disabled_reason = excluded.disabled_reason,
    source = excluded.source
WHERE ` + settingsDiffer + `
   OR (e.disabled_at IS NOT NULL, e.disabled_reason, e.source)
      IS DISTINCT FROM (@disabled::boolean, excluded.disabled_reason, excluded.source)`

// syncUpsertSQL copies one endpoint of the configuration file: a new one
// is created (disabled if the file says so); an existing one of source
// config gets the file's settings and keeps its disabled state; a row of
// another source is left alone (SyncFromConfig then fails on it).
const syncUpsertSQL = `INSERT INTO outbox.endpoints AS e (` + settingsColumns + `, disabled_at, disabled_reason, source)
VALUES (` + settingsValues + `,
    CASE WHEN @disabled::boolean THEN now() END,
    CASE WHEN @disabled::boolean THEN @disabled_reason::text END,
    'config')
ON CONFLICT (name) DO UPDATE SET ` + settingsUpdate + `
WHERE e.source = 'config' AND ` + settingsDiffer

// syncDeleteSQL removes the endpoints copied from the file earlier that are
// no longer in it.
const syncDeleteSQL = `DELETE FROM outbox.endpoints WHERE source = 'config' AND NOT (name = ANY ($1::text[]))`

// syncConflictsSQL finds names of the file held by rows of another source.
const syncConflictsSQL = `SELECT name, source FROM outbox.endpoints
WHERE name = ANY ($1::text[]) AND source <> 'config' ORDER BY name`

const removeSQL = `DELETE FROM outbox.endpoints WHERE name = $1 AND source <> 'config'`

// disableSQL keeps the time of an earlier disable, and changes nothing when
// the endpoint is already disabled for the same reason.
const disableSQL = `UPDATE outbox.endpoints
SET disabled_at = coalesce(disabled_at, now()), disabled_reason = nullif($2, '')
WHERE name = $1 AND (disabled_at IS NULL OR disabled_reason IS DISTINCT FROM nullif($2, ''))`

const enableSQL = `UPDATE outbox.endpoints SET disabled_at = NULL, disabled_reason = NULL
WHERE name = $1 AND disabled_at IS NOT NULL`

const existsSQL = `SELECT EXISTS (SELECT 1 FROM outbox.endpoints WHERE name = $1)`
