package webhook

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Tx is the unit of work in which a receiver applies a message and records
// its id as processed: both take effect on Commit, neither on Rollback.
// pgx.Tx satisfies it.
//
// Rollback after Commit must be harmless (it may return an error, which is
// ignored), so that callers can defer Rollback.
type Tx interface {
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Store records which message ids a receiver has processed, turning Herald's
// at-least-once delivery into effectively-once processing.
//
// Begin starts a unit of work and claims id in it. If the id was already
// processed (claimed by a committed unit of work), Begin returns
// duplicate = true; it then has ended its unit of work itself and tx is the
// zero value. Otherwise the caller applies the message within tx and commits
// or rolls back.
//
// While a claim is open, a concurrent Begin for the same id waits until the
// claim ends: after a Commit it reports a duplicate, after a Rollback it
// claims the id itself. So exactly one unit of work per id ever commits.
// A waiting Begin returns early with the context's error.
type Store[T Tx] interface {
	Begin(ctx context.Context, id string) (tx T, duplicate bool, err error)
}

// MemoryStore is a Store for receivers without a database. Because the ids
// live in process memory, a restart forgets them, and the unit of work holds
// only the claim: changes the application makes elsewhere are not rolled
// back with it. Prefer PostgresStore when the application state lives in
// PostgreSQL. A MemoryStore is safe for concurrent use.
type MemoryStore struct {
	now func() time.Time

	mu        sync.Mutex
	processed map[string]time.Time     // committed ids and when they were claimed
	inflight  map[string]chan struct{} // open claims; closed when the claim ends
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		now:       time.Now,
		processed: make(map[string]time.Time),
		inflight:  make(map[string]chan struct{}),
	}
}

// Begin claims id. See Store for the contract.
func (s *MemoryStore) Begin(ctx context.Context, id string) (*MemoryTx, bool, error) {
	for {
		s.mu.Lock()
		if _, ok := s.processed[id]; ok {
			s.mu.Unlock()
			return nil, true, nil
		}
		ended, busy := s.inflight[id]
		if !busy {
			ended = make(chan struct{})
			s.inflight[id] = ended
			claimedAt := s.now()
			s.mu.Unlock()
			return &MemoryTx{store: s, id: id, claimedAt: claimedAt, ended: ended}, false, nil
		}
		s.mu.Unlock()
		select {
		case <-ended:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// Prune forgets ids claimed more than olderThan ago and returns how many it
// forgot. A pruned id that is delivered again is processed again, so keep
// ids longer than the sender may retry.
func (s *MemoryStore) Prune(_ context.Context, olderThan time.Duration) (int64, error) {
	cutoff := s.now().Add(-olderThan)
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, at := range s.processed {
		if at.Before(cutoff) {
			delete(s.processed, id)
			n++
		}
	}
	return n, nil
}

// errTxDone is returned by Commit on a MemoryTx that already ended.
var errTxDone = errors.New("webhook: memory tx already ended")

// MemoryTx is an open claim on an id in a MemoryStore.
type MemoryTx struct {
	store     *MemoryStore
	id        string
	claimedAt time.Time
	ended     chan struct{}
	once      sync.Once
}

// Commit records the id as processed and wakes concurrent Begins for it,
// which then report a duplicate.
func (tx *MemoryTx) Commit(context.Context) error {
	done := false
	tx.once.Do(func() {
		done = true
		tx.store.mu.Lock()
		tx.store.processed[tx.id] = tx.claimedAt
		delete(tx.store.inflight, tx.id)
		tx.store.mu.Unlock()
		close(tx.ended)
	})
	if !done {
		return errTxDone
	}
	return nil
}

// Rollback releases the claim, so the next delivery of the id is processed.
// After Commit it does nothing.
func (tx *MemoryTx) Rollback(context.Context) error {
	tx.once.Do(func() {
		tx.store.mu.Lock()
		delete(tx.store.inflight, tx.id)
		tx.store.mu.Unlock()
		close(tx.ended)
	})
	return nil
}
