package webhook

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
)

// storeUnderTest is one Store implementation as the contract suite sees it.
type storeUnderTest[T Tx] struct {
	store Store[T]
	prune func(ctx context.Context, olderThan time.Duration) (int64, error)
	// age makes a processed id look received `by` earlier.
	age func(t *testing.T, id string, by time.Duration)
}

func newPostgresStoreUnderTest(t *testing.T) storeUnderTest[pgx.Tx] {
	t.Helper()
	pool := heraldtest.PoolFor(t, heraldtest.EmptyURL(t))
	s, err := NewPostgresStore(pool, "")
	require.NoError(t, err)
	require.NoError(t, s.CreateTable(t.Context()))
	return storeUnderTest[pgx.Tx]{
		store: s,
		prune: s.Prune,
		age: func(t *testing.T, id string, by time.Duration) {
			t.Helper()
			tag, err := pool.Exec(t.Context(),
				`UPDATE webhook_processed_messages SET received_at = received_at - make_interval(secs => $2) WHERE id = $1`,
				id, by.Seconds())
			require.NoError(t, err)
			require.EqualValues(t, 1, tag.RowsAffected())
		},
	}
}

func newMemoryStoreUnderTest(t *testing.T) storeUnderTest[*MemoryTx] {
	t.Helper()
	s := NewMemoryStore()
	return storeUnderTest[*MemoryTx]{
		store: s,
		prune: s.Prune,
		age: func(t *testing.T, id string, by time.Duration) {
			t.Helper()
			s.mu.Lock()
			defer s.mu.Unlock()
			at, ok := s.processed[id]
			require.True(t, ok, id)
			s.processed[id] = at.Add(-by)
		},
	}
}

func TestPostgresStore(t *testing.T) {
	t.Parallel()
	runStoreContract(t, newPostgresStoreUnderTest)

	t.Run("TableName", func(t *testing.T) {
		t.Parallel()
		pool := heraldtest.PoolFor(t, heraldtest.EmptyURL(t))
		_, err := pool.Exec(t.Context(), `CREATE SCHEMA receiver`)
		require.NoError(t, err)
		s, err := NewPostgresStore(pool, "receiver.Processed Ids")
		require.NoError(t, err)
		require.NoError(t, s.CreateTable(t.Context()))
		require.NoError(t, s.CreateTable(t.Context()), "CreateTable is idempotent")

		tx, dup, err := s.Begin(t.Context(), "msg_1")
		require.NoError(t, err)
		require.False(t, dup)
		require.NoError(t, tx.Commit(t.Context()))

		var n int
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM receiver."Processed Ids"`).Scan(&n))
		require.Equal(t, 1, n)

		for _, bad := range []string{"a..b", ".a", "a.", "a.b.c"} {
			_, err := NewPostgresStore(pool, bad)
			require.ErrorContains(t, err, "table", bad)
		}
	})

	t.Run("SchemaSQL", func(t *testing.T) {
		t.Parallel()
		s, err := NewPostgresStore(nil, "")
		require.NoError(t, err)
		require.Contains(t, s.SchemaSQL(), `CREATE TABLE IF NOT EXISTS "webhook_processed_messages"`)
		require.Contains(t, s.SchemaSQL(), `"webhook_processed_messages_received_at_idx"`)
	})
}

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	runStoreContract(t, newMemoryStoreUnderTest)

	t.Run("CommitTwice", func(t *testing.T) {
		t.Parallel()
		s := NewMemoryStore()
		tx, _, err := s.Begin(t.Context(), "msg_1")
		require.NoError(t, err)
		require.NoError(t, tx.Commit(t.Context()))
		require.ErrorIs(t, tx.Commit(t.Context()), errTxDone)
	})
}

// runStoreContract runs the Store contract against one implementation.
func runStoreContract[T Tx](t *testing.T, setup func(t *testing.T) storeUnderTest[T]) {
	t.Run("ClaimCommitDuplicate", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		ctx := t.Context()

		tx, dup, err := s.store.Begin(ctx, "msg_1")
		require.NoError(t, err)
		require.False(t, dup)
		require.NoError(t, tx.Commit(ctx))
		_ = tx.Rollback(ctx) // harmless after Commit

		_, dup, err = s.store.Begin(ctx, "msg_1")
		require.NoError(t, err)
		require.True(t, dup)

		tx, dup, err = s.store.Begin(ctx, "msg_2")
		require.NoError(t, err)
		require.False(t, dup, "ids are independent")
		require.NoError(t, tx.Commit(ctx))
	})

	t.Run("RollbackReleases", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		ctx := t.Context()

		tx, dup, err := s.store.Begin(ctx, "msg_1")
		require.NoError(t, err)
		require.False(t, dup)
		require.NoError(t, tx.Rollback(ctx))

		tx, dup, err = s.store.Begin(ctx, "msg_1")
		require.NoError(t, err)
		require.False(t, dup, "a rolled-back claim is not a processed id")
		require.NoError(t, tx.Commit(ctx))
	})

	t.Run("OpenClaimBlocksOnlyItsID", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		ctx := t.Context()

		held, _, err := s.store.Begin(ctx, "msg_1")
		require.NoError(t, err)
		t.Cleanup(func() { _ = held.Rollback(context.Background()) })

		other, dup, err := s.store.Begin(ctx, "msg_2")
		require.NoError(t, err)
		require.False(t, dup)
		require.NoError(t, other.Commit(ctx))

		waitCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, _, err = s.store.Begin(waitCtx, "msg_1")
		require.Error(t, err, "Begin waits on the open claim until its context ends")
	})

	t.Run("WaiterSeesOutcome", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		ctx := t.Context()

		for _, commit := range []bool{false, true} {
			id := "msg_rollback"
			if commit {
				id = "msg_commit"
			}
			held, _, err := s.store.Begin(ctx, id)
			require.NoError(t, err)

			type result struct {
				tx  T
				dup bool
				err error
			}
			waiter := make(chan result, 1)
			go func() {
				tx, dup, err := s.store.Begin(ctx, id)
				waiter <- result{tx, dup, err}
			}()
			select {
			case r := <-waiter:
				t.Fatalf("Begin returned while the claim was open: %+v", r)
			case <-time.After(50 * time.Millisecond):
			}
			if commit {
				require.NoError(t, held.Commit(ctx))
			} else {
				require.NoError(t, held.Rollback(ctx))
			}
			r := <-waiter
			require.NoError(t, r.err)
			require.Equal(t, commit, r.dup)
			if !r.dup {
				require.NoError(t, r.tx.Commit(ctx))
			}
		}
	})

	t.Run("ConcurrentBegins", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		ctx := t.Context()

		const n = 20
		var (
			claims, commits, dups atomic.Int32
			wg                    sync.WaitGroup
			start                 = make(chan struct{})
			errs                  = make(chan error, n)
		)
		for range n {
			wg.Go(func() {
				<-start
				tx, dup, err := s.store.Begin(ctx, "msg_1")
				if err != nil {
					errs <- err
					return
				}
				if dup {
					dups.Add(1)
					return
				}
				if claims.Add(1) == 1 {
					// The first claimant fails: its claim must pass to a waiter.
					errs <- tx.Rollback(ctx)
					return
				}
				commits.Add(1)
				errs <- tx.Commit(ctx)
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 1, commits.Load())
		require.EqualValues(t, 2, claims.Load())
		require.EqualValues(t, n-2, dups.Load())
	})

	t.Run("Prune", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		ctx := t.Context()

		for _, id := range []string{"old_1", "old_2", "recent"} {
			tx, _, err := s.store.Begin(ctx, id)
			require.NoError(t, err)
			require.NoError(t, tx.Commit(ctx))
		}
		s.age(t, "old_1", 49*time.Hour)
		s.age(t, "old_2", 72*time.Hour)
		s.age(t, "recent", 47*time.Hour)

		n, err := s.prune(ctx, 48*time.Hour)
		require.NoError(t, err)
		require.EqualValues(t, 2, n)

		_, dup, err := s.store.Begin(ctx, "recent")
		require.NoError(t, err)
		require.True(t, dup, "recent id kept")

		tx, dup, err := s.store.Begin(ctx, "old_1")
		require.NoError(t, err)
		require.False(t, dup, "pruned id forgotten")
		require.NoError(t, tx.Rollback(ctx))

		n, err = s.prune(ctx, 48*time.Hour)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}
