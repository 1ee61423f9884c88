// Package heraldtest gives each test its own PostgreSQL database, migrated to
// Herald's latest schema, so tests and packages run in parallel against the
// real server without seeing each other's rows.
//
// The server is TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). A test whose
// server cannot be reached fails with instructions; it never skips.
package heraldtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/herald-relay/herald/migrations"
)

// DefaultURL is the server used when TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// HowToStart tells a developer whose test found no database how to start one.
const HowToStart = `start PostgreSQL and point TEST_DATABASE_URL at it, for example:
    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
or  docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16
then: TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable make test`

// ServerURL returns the URL of the server the tests use.
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// templateLock serialises template creation across test binaries.
const templateLock int64 = 0x4865726174706c

var (
	templateMu   sync.Mutex
	templateName string
	templateErr  error
)

// URL creates a new database migrated to the latest schema and returns its
// URL. The database is dropped when the test ends.
func URL(tb testing.TB) string {
	tb.Helper()
	templateMu.Lock()
	if templateName == "" {
		templateName, templateErr = ensureTemplate()
	}
	name, err := templateName, templateErr
	templateMu.Unlock()
	if err != nil {
		tb.Fatalf("heraldtest: %v", err)
	}
	for tries := 1; ; tries++ {
		url, err := createDatabase(tb, name)
		var pgErr *pgconn.PgError
		if err == nil || tries == 3 || !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
			if err != nil {
				tb.Fatalf("heraldtest: %v", err)
			}
			return url
		}
		// The template is gone: another checkout's older test harness
		// dropped it. Build it again.
		templateMu.Lock()
		if templateName == name {
			templateName, templateErr = ensureTemplate()
		}
		name, err = templateName, templateErr
		templateMu.Unlock()
		if err != nil {
			tb.Fatalf("heraldtest: %v", err)
		}
	}
}

// EmptyURL creates a new database with no Herald schema (for migration tests
// and for receivers' own tables) and returns its URL.
func EmptyURL(tb testing.TB) string {
	tb.Helper()
	url, err := createDatabase(tb, "template0")
	if err != nil {
		tb.Fatalf("heraldtest: %v", err)
	}
	return url
}

// Pool returns a pool on a new migrated database, closed when the test ends.
func Pool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return PoolFor(tb, URL(tb))
}

// PoolFor opens a pool on url, closed when the test ends.
func PoolFor(tb testing.TB, url string) *pgxpool.Pool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		tb.Fatalf("heraldtest: open pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

func connectAdmin(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return nil, fmt.Errorf("cannot reach the test database at %s: %w\n%s", redact(ServerURL()), err, HowToStart)
	}
	return conn, nil
}

func createDatabase(tb testing.TB, template string) (string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := connectAdmin(ctx)
	if err != nil {
		return "", err
	}
	defer admin.Close(context.Background())
	name := "herald_test_" + randomHex(6)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{template}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := connectAdmin(ctx)
		if err != nil {
			tb.Errorf("heraldtest: drop database: %v", err)
			return
		}
		defer admin.Close(context.Background())
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("heraldtest: drop database %s: %v", name, err)
		}
	})
	return WithDatabase(ServerURL(), name), nil
}

// ensureTemplate creates (once per schema version, across all test binaries)
// a database holding the migrated schema; tests copy it, which is much faster
// than migrating each database.
func ensureTemplate() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := schemaHash()
	if err != nil {
		return "", err
	}
	name := "herald_tpl_" + sum
	admin, err := connectAdmin(ctx)
	if err != nil {
		return "", err
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLock); err != nil {
		return "", fmt.Errorf("template lock: %w", err)
	}
	defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", templateLock) //nolint:errcheck
	// Templates of other schemas left unused for a day are of no further
	// use. Not sooner: another checkout (another branch, CI beside a
	// developer) may be testing its own schema on this server right now.
	// One still being copied refuses the drop, which is fine.
	if rows, err := admin.Query(ctx, `SELECT datname FROM pg_database d
		WHERE datname LIKE 'herald\_tpl\_%' AND datname <> $1
		AND shobj_description(d.oid, 'pg_database') ~ '^herald test template, used at [0-9]+$'
		AND substring(shobj_description(d.oid, 'pg_database') FROM '[0-9]+$')::bigint < extract(epoch FROM now()) - $2`,
		name, int64(staleTemplateAge.Seconds())); err == nil {
		stale, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, db := range stale {
			_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize())
		}
	}
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("template lookup: %w", err)
	}
	if exists {
		return name, markUsed(ctx, admin, name)
	}
	building := name + "_building"
	_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{building}.Sanitize()+" WITH (FORCE)")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{building}.Sanitize()+" TEMPLATE template0"); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	conn, err := pgx.Connect(ctx, WithDatabase(ServerURL(), building))
	if err != nil {
		return "", fmt.Errorf("connect template: %w", err)
	}
	_, err = migrations.Migrate(ctx, conn, -1)
	conn.Close(context.Background())
	if err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	// Renamed only once complete, so a crash mid-build never leaves a
	// half-migrated template behind under the final name.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{building}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("rename template: %w", err)
	}
	return name, markUsed(ctx, admin, name)
}

// staleTemplateAge is how long a template of another schema is kept unused.
const staleTemplateAge = 24 * time.Hour

// markUsed records when a template was last used, in its comment.
func markUsed(ctx context.Context, admin *pgx.Conn, name string) error {
	comment := fmt.Sprintf("herald test template, used at %d", time.Now().Unix())
	_, err := admin.Exec(ctx, "COMMENT ON DATABASE "+pgx.Identifier{name}.Sanitize()+" IS "+quoteLiteral(comment))
	if err != nil {
		return fmt.Errorf("mark template used: %w", err)
	}
	return nil
}

// quoteLiteral quotes s, made of digits and plain words, as an SQL string
// (COMMENT takes no parameters).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// schemaHash identifies the migration files, so that a changed migration gets
// a new template.
func schemaHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS(), path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Standalone is a testing.TB for runnable examples, which have no *testing.T:
// failures panic, and cleanups run when the package's TestMain calls Main.
type Standalone struct{ testing.TB }

var (
	standaloneMu       sync.Mutex
	standaloneCleanups []func()
)

// Helper does nothing.
func (*Standalone) Helper() {}

// Cleanup registers f to run after all tests and examples (see Main).
func (*Standalone) Cleanup(f func()) {
	standaloneMu.Lock()
	defer standaloneMu.Unlock()
	standaloneCleanups = append(standaloneCleanups, f)
}

// Fatalf panics.
func (*Standalone) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// Errorf panics.
func (*Standalone) Errorf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// Main runs the tests and examples, then the cleanups that examples
// registered through Standalone, and exits. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	standaloneMu.Lock()
	fs := standaloneCleanups
	standaloneCleanups = nil
	standaloneMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	// Every goroutine a test started (relays, pools, servers) must be gone
	// once its cleanups ran: a leak here is a Stop or Close that does not
	// wait for what it owns.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "heraldtest: goroutines left running after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
