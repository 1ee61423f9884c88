package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-relay/herald/internal/pgcluster"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
)

// The fault phases measure how fast Herald recovers from what production
// does to it every day: a relay process killed while it holds messages
// (kill), and PostgreSQL restarted under a steady load (pgrestart).

// faultDelay is how long the receivers of the fault phases take to answer:
// long enough that a relay always holds requests in flight.
const faultDelay = 20 * time.Millisecond

// KillResult is the kill phase: two relays drain a backlog, one is
// SIGKILLed while it holds messages in flight.
type KillResult struct {
	N       int     `json:"n"`
	DelayMs float64 `json:"receiver_delay_ms"`
	// ReceivedAtKill is how many messages had arrived when the relay was
	// killed; LeasedAtKill how many rows were claimed and not yet done
	// (by either relay).
	ReceivedAtKill int64 `json:"received_at_kill"`
	LeasedAtKill   int   `json:"leased_at_kill"`
	// TakenOver counts the rows the dead relay held at the kill (their
	// holder column): every one was delivered, so every one was taken over.
	// Counted from the holder, not by watching for a second claim, which a
	// row taken over and delivered within one look escapes.
	TakenOver int `json:"taken_over"`
	// Seconds is from the relays' start until every message arrived and
	// the table is empty.
	Seconds float64 `json:"seconds"`
	// TakeoverSeconds is from the kill to the first arrival of a message
	// the dead relay held (its arrival after the kill);
	// TakeoverLastSeconds to the last one.
	TakeoverSeconds     float64 `json:"takeover_s"`
	TakeoverLastSeconds float64 `json:"takeover_last_s"`
	// Where the takeover's time goes, each from the kill, by PostgreSQL's
	// clock (on this machine, the bench's): the dead relay's alive_until
	// (its last heartbeat plus heartbeat_timeout), its dead_at (when a
	// relay declared it dead), and the first claim that took one of its
	// rows (visible_at - lease of the rows seen taken over).
	AliveUntilSeconds float64 `json:"alive_until_s"`
	DeadAtSeconds     float64 `json:"dead_at_s"`
	ClaimedSeconds    float64 `json:"claimed_s"`
	Posts             int64   `json:"receiver_posts"`
	Unique            int64   `json:"receiver_unique"`
	AllDelivered      bool    `json:"all_delivered"`
}

// killRelay drains n messages with two relays posting to a receiver that
// answers in faultDelay, SIGKILLs one once a quarter has arrived, and
// times how long the rows it held wait for the other.
func (b *bench) killRelay(ctx context.Context) error {
	n := b.opt.killN
	r := KillResult{N: n, DelayMs: float64(faultDelay.Milliseconds())}
	if err := b.truncate(ctx); err != nil {
		return err
	}
	if _, err := b.preload(ctx, n, 0); err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	if err := b.analyze(ctx); err != nil {
		return err
	}
	if err := b.recv.reset(); err != nil {
		return err
	}
	t0 := time.Now()
	var procs []*relayProc
	defer func() {
		for _, p := range procs {
			_ = p.stop()
		}
	}()
	for i := range 2 {
		p, err := b.startRelay(i, slowHookURL(b.recv.hookURL(), faultDelay, i), relayOpts{lease: b.opt.lease})
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	// Time enough for the lease (60 s by default) to lapse once, and for
	// the rest at the slowest rate seen here.
	deadline := t0.Add(90*time.Second + 2*cmp.Or(b.opt.lease, relay.LeaseDefault) + time.Duration(n)*time.Millisecond)
	var st recvStats
	var err error
	for st.Unique < int64(n)/4 {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("before the kill: receiver has %d of %d (%v)", st.Unique, n, ctx.Err())
		}
		for _, p := range procs {
			if err := p.alive(); err != nil {
				return err
			}
		}
		if st, err = b.recv.stats(); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The victim is the relay with more rows in hand (claimed, not yet
	// delivered): one claim can take a small backlog whole.
	inHand := func(p *relayProc) float64 {
		c, err1 := scrape(p.metricsURL, "herald_claimed_total", `lane="hot"`)
		d, err2 := scrape(p.metricsURL, "herald_delivered_total", "")
		if err := errors.Join(err1, err2); err != nil {
			return -1
		}
		return c.sample - d.sample
	}
	if inHand(procs[1]) > inHand(procs[0]) {
		procs[0], procs[1] = procs[1], procs[0]
	}
	victim := procs[0]
	procs = procs[1:]
	// The relays alive now: the victim is the one of them declared dead
	// after the kill (relays of earlier phases retired, dead too, just
	// before it).
	var live []int64
	rows, err := b.pool.Query(ctx, `SELECT id FROM outbox.relays WHERE dead_at IS NULL`)
	if err != nil {
		return err
	}
	if live, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		return err
	}
	if err := victim.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("SIGKILL relay: %w", err)
	}
	killAt := time.Now()
	<-victim.exited
	r.ReceivedAtKill = st.Unique
	// The rows claimed and not yet done: the dead relay's are among them.
	// Its backends end with it, so nothing it held changes but by a claim.
	var seqs []int64
	var attempts []int32
	idOf := map[int64]string{}
	holderOf := map[int64]int64{}
	rows, err = b.pool.Query(ctx, `SELECT seq, id, attempts, coalesce(holder, 0) FROM outbox.messages WHERE visible_at > now()`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var seq, holder int64
		var id string
		var a int32
		if err := rows.Scan(&seq, &id, &a, &holder); err != nil {
			return err
		}
		seqs, attempts, idOf[seq], holderOf[seq] = append(seqs, seq), append(attempts, a), id, holder
	}
	if err := rows.Err(); err != nil {
		return err
	}
	r.LeasedAtKill = len(seqs)
	// Watch those rows for a second claim until the run is over, for the
	// time of the first takeover claim. A row taken over is deleted once
	// delivered (some 20 ms later, plus the acknowledgement's batching), so
	// the watch polls often, and may still miss them all.
	lease := cmp.Or(b.opt.lease, relay.LeaseDefault)
	var firstClaim time.Time
	for {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("after the kill: receiver has %d of %d after %s (%v)", st.Unique, n, time.Since(t0).Round(time.Millisecond), ctx.Err())
		}
		if err := procs[0].alive(); err != nil {
			return err
		}
		rows, err := b.pool.Query(ctx, `SELECT m.seq, m.visible_at - $3 * interval '1 millisecond' FROM unnest($1::bigint[], $2::int[]) AS s(seq, attempts)
			JOIN outbox.messages m ON m.seq = s.seq WHERE m.attempts > s.attempts`, seqs, attempts, lease.Milliseconds())
		if err != nil {
			return err
		}
		var seq int64
		var claimedAt time.Time
		if _, err := pgx.ForEachRow(rows, []any{&seq, &claimedAt}, func() error {
			if firstClaim.IsZero() || claimedAt.Before(firstClaim) {
				firstClaim = claimedAt
			}
			return nil
		}); err != nil {
			return err
		}
		if st, err = b.recv.stats(); err != nil {
			return err
		}
		if st.Unique >= int64(n) {
			var empty bool
			if err := b.pool.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM outbox.messages)").Scan(&empty); err != nil {
				return err
			}
			if empty {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Seconds = round(time.Since(t0).Seconds(), 3)
	// The dead relay's row stays (dead) for a lease; the live one's is
	// never dead.
	var aliveUntil, deadAt time.Time
	var deadID int64
	if err := b.pool.QueryRow(ctx, `SELECT id, alive_until, dead_at FROM outbox.relays WHERE id = ANY($1) AND dead_at IS NOT NULL ORDER BY dead_at LIMIT 1`,
		live).Scan(&deadID, &aliveUntil, &deadAt); err == nil {
		r.AliveUntilSeconds = round(aliveUntil.Sub(killAt).Seconds(), 3)
		r.DeadAtSeconds = round(deadAt.Sub(killAt).Seconds(), 3)
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if !firstClaim.IsZero() {
		r.ClaimedSeconds = round(firstClaim.Sub(killAt).Seconds(), 3)
	}
	if err := procs[0].stop(); err != nil {
		return err
	}
	procs = nil
	st, err = b.recv.stats()
	if err != nil {
		return err
	}
	r.Posts, r.Unique = st.Total, st.Unique
	r.AllDelivered = st.Unique == int64(n)
	// The dead relay's rows: delivered (every message was), so by the
	// survivor, and their last arrival is its delivery.
	held := map[string]bool{}
	for seq, h := range holderOf {
		if deadID != 0 && h == deadID {
			held[idOf[seq]] = true
		}
	}
	r.TakenOver = len(held)
	if len(held) > 0 {
		last, err := b.recv.times("", true)
		if err != nil {
			return err
		}
		var waits []float64
		for id := range held {
			if t, ok := last[id]; ok && t > killAt.UnixNano() {
				waits = append(waits, float64(t-killAt.UnixNano())/1e9)
			}
		}
		if len(waits) > 0 {
			r.TakeoverSeconds = round(slices.Min(waits), 3)
			r.TakeoverLastSeconds = round(slices.Max(waits), 3)
		}
	}
	b.res.Kill = append(b.res.Kill, r)
	b.say("   kill: %d msgs, 2 relays, receiver %s: one SIGKILLed at %d received with %d rows leased; run %.2fs; takeover %.2fs after the kill (last %.2fs, %d rows of the dead relay taken over; from the kill: alive_until %.3fs, dead_at %.3fs, first claim %.3fs); %d posts, %d unique",
		n, faultDelay, r.ReceivedAtKill, r.LeasedAtKill, r.Seconds, r.TakeoverSeconds, r.TakeoverLastSeconds, r.TakenOver,
		r.AliveUntilSeconds, r.DeadAtSeconds, r.ClaimedSeconds, r.Posts, r.Unique)
	if !r.AllDelivered {
		return fmt.Errorf("kill: receiver has %d unique ids, want %d", st.Unique, n)
	}
	if r.TakenOver == 0 {
		b.note("kill: the dead relay held no row at the kill")
	}
	return b.truncate(ctx)
}

// RestartResult is the pgrestart phase: a steady load through one relay,
// PostgreSQL restarted (fast shutdown) mid-run.
type RestartResult struct {
	OfferedPerS int     `json:"offered_per_s"`
	DelayMs     float64 `json:"receiver_delay_ms"`
	// RateBefore is the delivery rate over the seconds before the restart.
	RateBefore float64 `json:"rate_before_per_s"`
	// DownSeconds is how long pg_ctl restart -m fast took, until the
	// server accepted connections again.
	DownSeconds float64 `json:"restart_s"`
	// FullSpeedSeconds is from the server accepting connections again to
	// the delivery rate, over fullSpeedWindow, reaching 90% of RateBefore.
	FullSpeedSeconds float64 `json:"full_speed_s"`
	// InFlightAtRestart counts the rows claimed and not yet done just
	// before the restart; InFlightLastSeconds is from the restart's start
	// to the last arrival of one of them (0: none arrived after it), and
	// InFlightAgain how many arrived again once the server was up (a lost
	// acknowledgement delivers a message twice).
	InFlightAtRestart   int     `json:"in_flight_at_restart"`
	InFlightLastSeconds float64 `json:"in_flight_last_arrival_s"`
	InFlightAgain       int     `json:"in_flight_delivered_again"`
	// WaitedLease: some of them arrived only once their lease had lapsed.
	WaitedLease    bool  `json:"in_flight_waited_lease"`
	Committed      int   `json:"committed"`
	ProducerErrors int   `json:"producer_errors"`
	Posts          int64 `json:"receiver_posts"`
	AllDelivered   bool  `json:"all_delivered"`
}

// fullSpeedWindow is the window over which the pgrestart phase measures
// the delivery rate.
const fullSpeedWindow = 500 * time.Millisecond

// pgRestart runs a throwaway cluster, offers it pgrestartRate messages/s
// through one relay posting to a receiver that answers in faultDelay,
// restarts PostgreSQL with a fast shutdown and times the recovery.
func (b *bench) pgRestart(ctx context.Context) error {
	cl, err := pgcluster.Start(ctx, "")
	if err != nil {
		return err
	}
	defer cl.Stop()
	const db = "herald_bench_restart"
	if err := cl.CreateDB(ctx, db); err != nil {
		return err
	}
	pool, err := migratedPool(ctx, cl.URL(db))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := b.recv.reset(); err != nil {
		return err
	}
	p, err := b.startRelay(0, slowHookURL(b.recv.hookURL(), faultDelay, 0), relayOpts{dsn: cl.URL(db)})
	if err != nil {
		return err
	}
	defer func() { _ = p.stop() }()
	if err := p.waitReady(20 * time.Second); err != nil {
		return err
	}
	r := RestartResult{OfferedPerS: b.opt.restartRate, DelayMs: float64(faultDelay.Milliseconds())}

	// The producer commits a batch every 10 ms. A batch that fails (the
	// server is down) is not tried again: it may have committed before
	// the connection broke, and its ids would then collide; only the ids
	// of the batches known committed are checked at the end.
	run := rand.Uint32()
	prefix := fmt.Sprintf("pgr_%08x_", run)
	perTick := max(1, b.opt.restartRate/100)
	var mu sync.Mutex
	var committed []string
	prodCtx, stopProducer := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		w := outbox.Writer{}
		for i := 0; ; i += perTick {
			select {
			case <-prodCtx.Done():
				return
			case <-t.C:
			}
			msgs := makeMessages(run, i, perTick, prefix)
			tctx, cancel := context.WithTimeout(prodCtx, 2*time.Second)
			err := pgx.BeginFunc(tctx, pool, func(tx pgx.Tx) error { return w.Enqueue(tctx, tx, msgs...) })
			cancel()
			mu.Lock()
			if err != nil {
				r.ProducerErrors++
			} else {
				for _, m := range msgs {
					committed = append(committed, m.ID)
				}
			}
			mu.Unlock()
		}
	})
	defer func() { stopProducer(); wg.Wait() }()

	// samples of the receiver's unique count, every 20 ms, in a goroutine
	// of their own so that the restart does not stop them.
	type sample struct {
		at     time.Time
		unique int64
	}
	var samples []sample
	sampCtx, stopSampler := context.WithCancel(ctx)
	var swg sync.WaitGroup
	swg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampCtx.Done():
				return
			case <-t.C:
			}
			if st, err := b.recv.stats(); err == nil {
				mu.Lock()
				samples = append(samples, sample{time.Now(), st.Unique})
				mu.Unlock()
			}
		}
	})
	defer func() { stopSampler(); swg.Wait() }()
	uniqueAt := func(t time.Time) (int64, bool) {
		mu.Lock()
		defer mu.Unlock()
		i, _ := slices.BinarySearchFunc(samples, t, func(s sample, t time.Time) int { return s.at.Compare(t) })
		if i == len(samples) {
			return 0, false
		}
		return samples[i].unique, true
	}

	// Warm up, then measure the rate before the restart.
	warm, steady := time.Second, b.opt.restartPre
	if err := sleepCtx(ctx, warm+steady); err != nil {
		return err
	}
	now := time.Now()
	a, _ := uniqueAt(now.Add(-steady))
	z, _ := uniqueAt(now.Add(-50 * time.Millisecond))
	r.RateBefore = round(float64(z-a)/(steady-50*time.Millisecond).Seconds(), 1)
	if r.RateBefore <= 0 {
		return fmt.Errorf("pgrestart: nothing delivered before the restart (log %s)", p.log)
	}
	rows, err := pool.Query(ctx, `SELECT id FROM outbox.messages WHERE visible_at > now()`)
	if err != nil {
		return err
	}
	inflight, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	r.InFlightAtRestart = len(inflight)
	down := time.Now()
	if err := cl.Restart(ctx, "fast"); err != nil {
		return err
	}
	up := time.Now()
	r.DownSeconds = round(up.Sub(down).Seconds(), 3)

	// Keep the load on for restartPost, then let the relay finish.
	if err := sleepCtx(ctx, b.opt.restartPost); err != nil {
		return err
	}
	stopProducer()
	wg.Wait()
	mu.Lock()
	r.Committed = len(committed)
	want := slices.Clone(committed)
	mu.Unlock()
	// Messages in flight that wait out their lease (60 s) would arrive
	// within 90 s.
	deadline := up.Add(90 * time.Second)
	var st recvStats
	for {
		if err := p.alive(); err != nil {
			return err
		}
		if st, err = b.recv.stats(); err != nil {
			return err
		}
		var left int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox.messages`).Scan(&left); err != nil {
			return err
		}
		if st.Unique >= int64(r.Committed) && left == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopSampler()
	swg.Wait()
	// Time to full speed: the first window after the server is up over
	// which deliveries reach 90% of the rate before.
	r.FullSpeedSeconds = -1
	for _, s := range samples {
		if s.at.Before(up.Add(fullSpeedWindow)) {
			continue
		}
		a, _ := uniqueAt(s.at.Add(-fullSpeedWindow))
		if float64(s.unique-a)/fullSpeedWindow.Seconds() >= 0.9*r.RateBefore {
			r.FullSpeedSeconds = round(s.at.Sub(up).Seconds(), 3)
			break
		}
	}
	first, err := b.recv.times(prefix, false)
	if err != nil {
		return err
	}
	last, err := b.recv.times(prefix, true)
	if err != nil {
		return err
	}
	r.Posts = st.Total
	r.AllDelivered = true
	for _, id := range want {
		if _, ok := first[id]; !ok {
			r.AllDelivered = false
		}
	}
	for _, id := range inflight {
		if t, ok := last[id]; ok {
			w := float64(t-down.UnixNano()) / 1e9
			r.InFlightLastSeconds = max(r.InFlightLastSeconds, round(w, 3))
			if t > up.UnixNano() && first[id] < down.UnixNano() {
				r.InFlightAgain++
			}
		}
	}
	// Anything later than the restart plus 10 s waited for a lease: the
	// relay retries its writes within a second of the server's return.
	r.WaitedLease = r.InFlightLastSeconds > r.DownSeconds+10
	b.res.Restart = append(b.res.Restart, r)
	b.say("   pgrestart: %d/s offered, receiver %s: %.0f/s before; PostgreSQL down %.2fs; full speed %.2fs after it was up; %d in flight at the restart, the last arrived %.2fs after it began (%d again); %d committed, %d producer errors, all delivered: %v",
		r.OfferedPerS, faultDelay, r.RateBefore, r.DownSeconds, r.FullSpeedSeconds, r.InFlightAtRestart, r.InFlightLastSeconds, r.InFlightAgain, r.Committed, r.ProducerErrors, r.AllDelivered)
	if !r.AllDelivered {
		return fmt.Errorf("pgrestart: %d committed messages, not all arrived within 90 s (log %s)", r.Committed, p.log)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// faultRows are the table's rows of the kill, pgrestart and stale phases.
func (b *bench) faultRows() {
	res := b.res
	for _, k := range res.Kill {
		b.row(fmt.Sprintf("one of 2 relays SIGKILLed mid-run (%d messages, receiver %.0f ms): run seconds", k.N, k.DelayMs), k.Seconds, "%.2f", "≤ 10", yesNo(k.Seconds <= 10))
		b.row("  kill → first delivery of a message the dead relay held, s (time to takeover)", k.TakeoverSeconds, "%.2f", "≤ 2", yesNo(k.TakeoverSeconds > 0 && k.TakeoverSeconds <= 2))
		b.row("  every message delivered (unique ids = N); posts − N", float64(k.Posts-int64(k.N)), fmt.Sprintf("%s; %%.0f", yesNo(k.AllDelivered)), "yes", yesNo(k.AllDelivered))
	}
	for _, r := range res.Restart {
		b.row(fmt.Sprintf("PostgreSQL restarted (fast) under %d msg/s (receiver %.0f ms): accepting connections → 90%% of the rate before, s (over %s)", r.OfferedPerS, r.DelayMs, fullSpeedWindow), r.FullSpeedSeconds, "%.2f", "≤ 5", yesNo(r.FullSpeedSeconds >= 0 && r.FullSpeedSeconds <= 5))
		b.row(fmt.Sprintf("  %d in flight at the restart: the last arrived, s after the restart began (it took %.2f s; waited out the lease: %s)", r.InFlightAtRestart, r.DownSeconds, yesNo(r.WaitedLease)), r.InFlightLastSeconds, "%.2f", "no lease wait", yesNo(!r.WaitedLease))
	}
	if len(res.Stale) > 0 {
		byPrep := map[string][]float64{}
		for _, d := range res.Stale {
			byPrep[stalePrepOf(d.Label)] = append(byPrep[stalePrepOf(d.Label)], d.Rate)
		}
		ref := median(byPrep["after ANALYZE"])
		for _, v := range []string{"fresh table, no ANALYZE", "after SELECT count(*) (hint bits set), no ANALYZE", "no ANALYZE, enable_bitmapscan off"} {
			if rates := byPrep[v]; len(rates) > 0 && ref > 0 {
				b.row(fmt.Sprintf("stale statistics, %d waiting, %s: drain rate ÷ after ANALYZE (medians of %d)", res.Stale[0].N, v, len(rates)), median(rates)/ref, "%.2f", "", "")
			}
		}
	}
}

// stalePrepOf is the variant part of a stale phase label.
func stalePrepOf(label string) string {
	label = strings.TrimPrefix(label, "stale: ")
	if i := strings.Index(label, " (round "); i >= 0 {
		label = label[:i]
	}
	return label
}
