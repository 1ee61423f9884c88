package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Row is one line of the final table.
type Row struct {
	Metric string  `json:"metric"`
	Value  string  `json:"value"`
	Raw    float64 `json:"raw"`
	Target string  `json:"target"`
	Met    string  `json:"met"` // yes, no, or "" for information only
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func (b *bench) row(metric string, raw float64, format, target string, met string) {
	v := "n/a"
	if !math.IsNaN(raw) && raw != -1 {
		v = fmt.Sprintf(format, raw)
	}
	raw = round(raw, 4)
	b.res.Table = append(b.res.Table, Row{Metric: metric, Value: v, Raw: raw, Target: target, Met: met})
}

func (b *bench) buildTable() {
	res := b.res
	// 1. drain
	var rates, relayUs, recvUs, pgUs, machUs, rss, wr, hot []float64
	for _, d := range res.Drains {
		rates = append(rates, d.Rate)
		relayUs = append(relayUs, d.CPUPerMsgUs.Relay)
		recvUs = append(recvUs, d.CPUPerMsgUs.Receiver)
		pgUs = append(pgUs, d.CPUPerMsgUs.Postgres)
		machUs = append(machUs, d.CPUPerMsgUs.Machine)
		rss = append(rss, d.RSSMiB)
		if d.Writes != nil {
			wr = append(wr, d.Writes.RelayWritesPer)
			hot = append(hot, d.Writes.HOTShare)
		}
	}
	if len(rates) > 0 {
		d := res.Drains[0]
		m := median(rates)
		b.row(fmt.Sprintf("drain %d waiting: deliveries/s (median of %d, %s)", d.N, len(rates), d.Receiver), m, "%.0f", "≥ 12000", yesNo(m >= 12000))
		b.row("  relay CPU µs per delivery (median)", median(relayUs), "%.1f", "", "")
		b.row("  receiver / PostgreSQL / machine CPU µs per delivery (medians)", median(machUs), fmt.Sprintf("%.1f / %.1f / %%.1f", median(recvUs), median(pgUs)), "", "")
		mr := slicesMax(rss)
		b.row("  relay peak RSS MiB (max over drains)", mr, "%.1f", "< 100", yesNo(mr < 100))
	}
	if c := res.PeerSummary; c != nil {
		b.row(fmt.Sprintf("river-relay %s: deliveries/s (median)", c.RiverConfig), c.RiverMedian, "%.0f", "", "")
		b.row(fmt.Sprintf("naive-relay %s: deliveries/s (median)", c.NaiveConfig), c.NaiveMedian, "%.0f", "", "")
		b.row("herald ÷ river (ratio of medians, same run)", c.HeraldOnRiver, "%.2f×", "≥ 2×", yesNo(c.HeraldOnRiver >= 2))
		b.row("herald ÷ naive-relay (ratio of medians)", c.HeraldOnNaive, "%.2f×", "", "")
	} else {
		b.row("herald ÷ river", math.NaN(), "", "≥ 2×", "not measured (no peers)")
	}
	// 2. latency
	if l := res.Latency; l != nil {
		b.row(fmt.Sprintf("commit→receipt p50 at %d msg/s (%d producers, 1 msg/tx)", l.OfferedPerS, l.Producers), l.P50Ms, "%.2f ms", "≤ 5 ms", yesNo(l.P50Ms <= 5))
		b.row("commit→receipt p95", l.P95Ms, "%.2f ms", "", "")
		b.row("commit→receipt p99", l.P99Ms, "%.2f ms", "≤ 25 ms", yesNo(l.P99Ms <= 25))
		b.row("  producer Enqueue+commit p99 (1 msg/tx, NOTIFY)", l.CommitP99Ms, "%.2f ms", "", "")
	}
	if l := res.LatencyNoNotify; l != nil {
		b.row(fmt.Sprintf("commit→receipt p50 at %d msg/s, producers without NOTIFY (the relay polls)", l.OfferedPerS), l.P50Ms, "%.2f ms", "", "")
		b.row("  the same, p95", l.P95Ms, "%.2f ms", "", "")
		b.row("  the same, p99", l.P99Ms, "%.2f ms", "", "")
		b.row("  producer Enqueue+commit p99 (1 msg/tx, no NOTIFY)", l.CommitP99Ms, "%.2f ms", "", "")
	}
	// 3. producers
	for _, v := range []struct {
		method string
		batch  int
		notify bool
		target bool
	}{{"enqueue", 1000, true, true}, {"enqueue", 1000, false, false}, {"enqueue", 100, true, false}, {"enqueue", 100, false, false}, {"sql", 1, false, false}, {"sql", 1, true, false}} {
		m, k := b.medianProducer(v.method, v.batch, v.notify)
		if k == 0 {
			continue
		}
		name := fmt.Sprintf("outbox.Enqueue batch %d, 1 producer, %s: rows/s", v.batch, notifyLabel(v.notify))
		if v.method == "sql" {
			name = fmt.Sprintf("plain SQL INSERT 1 row/tx, %d producers, %s: rows/s", b.opt.sqlProducers, notifyLabel(v.notify))
		}
		target, met := "", ""
		if v.target {
			target, met = "≥ 40000", yesNo(m >= 40000)
		}
		b.row(name, m, "%.0f", target, met)
	}
	// 4. claim latency by backlog
	var base float64
	for i, c := range res.Claims {
		b.row(fmt.Sprintf("claim p99 (hot lane) with %d waiting [bucket upper bound; interp %.2f ms, mean %.2f ms; with the warm-up %.2f ms]", c.N, c.ClaimP99Interp, c.ClaimMeanMs, c.ClaimP99WithWarmup), c.ClaimP99Ms, "≤ %.1f ms", "< 5 ms", yesNo(c.ClaimsInSlice > 0 && c.ClaimP99Ms >= 0 && c.ClaimP99Ms < 5))
		met, target := "", ""
		if i == 0 {
			base = c.SliceRate
		} else if base > 0 {
			target, met = fmt.Sprintf("≥ 80%% of %d-waiting rate", res.Claims[0].N), yesNo(c.SliceRate >= 0.8*base)
		}
		b.row(fmt.Sprintf("  deliveries/s over the first %d with %d waiting (%.0f%% of %d-waiting)", c.SliceN, c.N, 100*c.SliceRate/base, res.Claims[0].N), c.SliceRate, "%.0f", target, met)
		b.row(fmt.Sprintf("  relay peak RSS MiB with %d waiting", c.N), c.RSSMiB, "%.1f", "< 100", yesNo(c.RSSMiB < 100))
	}
	for _, c := range res.PacedClaims {
		b.row(fmt.Sprintf("claim p99 (hot lane) with %d waiting, endpoint paced at %d/s (cores to spare) [bucket upper bound; interp %.2f ms, mean %.2f ms; with the warm-up %.2f ms]", c.N, c.RateLimit, c.ClaimP99Interp, c.ClaimMeanMs, c.ClaimP99WithWarmup),
			c.ClaimP99Ms, "≤ %.1f ms", "< 5 ms", yesNo(c.ClaimsInSlice > 0 && c.ClaimP99Ms >= 0 && c.ClaimP99Ms < 5))
	}
	// 5. writes
	if len(wr) > 0 {
		m := median(wr)
		b.row("relay row writes per delivery, beyond the producer's insert (pg_stat_user_tables, median)", m, "%.3f", "≤ 2", yesNo(m <= 2))
		d := res.Drains[0].Writes
		b.row(fmt.Sprintf("  per delivery: ins %.3f, upd %.3f, HOT upd %.3f, del %.3f (round 1); HOT share of updates (median)", d.InsPerMsg, d.UpdPerMsg, d.HotUpdPerMsg, d.DelPerMsg), median(hot), "%.3f", "claims HOT (≈1)", yesNo(median(hot) >= 0.9))
	}
	// 6. many relays
	// Each row is held to the one with fewer relays and the same
	// GOMAXPROCS rule; the single relay starts both sequences.
	prev := map[bool]float64{}
	for _, g := range groupRelays(res.ManyRelays) {
		shared := g.gomaxprocs > 0
		target, met := "", ""
		if p := prev[shared]; p > 0 {
			target, met = "≥ the row with fewer relays and the same GOMAXPROCS rule (−5% noise allowance)", yesNo(g.steady >= 0.95*p)
		}
		procs := "GOMAXPROCS default (all cores each)"
		if g.gomaxprocs > 0 {
			procs = fmt.Sprintf("GOMAXPROCS=%d each", g.gomaxprocs)
		}
		b.row(fmt.Sprintf("%d relay process(es), %s, %d waiting: total deliveries/s, steady (10%%→90%% received), median of %d", g.relays, procs, g.n, g.runs), g.steady, "%.0f", target, met)
		b.row("  same, from the processes' start to an empty outbox (median)", g.rate, "%.0f", "", "")
		b.row("  machine CPU µs per delivery (median)", g.machineUs, "%.1f", "", "")
		prev[shared] = g.steady
		if g.relays == 1 {
			prev[true] = g.steady
		}
	}
	// 7. slow receivers
	if len(res.Slow) > 0 {
		var steady, relayUs, rss, deferred []float64
		for _, d := range res.Slow {
			steady = append(steady, d.SteadyRate)
			relayUs = append(relayUs, d.CPUPerMsgUs.Relay)
			rss = append(rss, d.RSSMiB)
			deferred = append(deferred, d.Deferred)
		}
		d := res.Slow[0]
		m := median(steady)
		// The goal is set for the default shape only: slower receivers
		// are bounded by relay.max_in_flight ÷ their delay.
		target, met := "", ""
		if d.Endpoints == 200 && d.DelayMs == 200 {
			target, met = "≥ 8000", yesNo(m >= 8000)
		}
		b.row(fmt.Sprintf("%d endpoints, receivers answering in %.0f ms, %d waiting, default config: deliveries/s, steady (10%%→90%% received), median of %d", d.Endpoints, d.DelayMs, d.N, len(steady)), m, "%.0f", target, met)
		b.row("  relay CPU µs per delivery (median)", median(relayUs), "%.1f", "", "")
		mr := slicesMax(rss)
		b.row("  relay peak RSS MiB (max)", mr, "%.1f", "< 300", yesNo(mr < 300))
		b.row("  pairs deferred to the retry lane (herald_deferred_total, max)", slicesMax(deferred), "%.0f", "", "")
		// River, same rounds: from the start to the last delivery, as
		// river-relay measures it, beside Herald's same figure.
		var whole []float64
		for _, d := range res.Slow {
			whole = append(whole, d.Rate)
		}
		byWorkers := map[string][]float64{}
		var variants []string
		for _, p := range res.SlowPeers {
			if _, ok := byWorkers[p.Variant]; !ok {
				variants = append(variants, p.Variant)
			}
			byWorkers[p.Variant] = append(byWorkers[p.Variant], p.Rate)
		}
		if len(variants) > 0 {
			b.row("  Herald, from the start to an empty outbox: deliveries/s (median)", median(whole), "%.0f", "", "")
		}
		for _, v := range variants {
			rv := median(byWorkers[v])
			workers, _, _ := strings.Cut(strings.TrimPrefix(v, "-workers "), " ")
			b.row(fmt.Sprintf("  River, %s workers, same rounds and receiver: deliveries/s (median)", workers), rv, "%.0f", "", "")
			if rv > 0 {
				b.row(fmt.Sprintf("  Herald ÷ River (%s workers)", workers), median(whole)/rv, "%.2f×", "", "")
			}
		}
	}
	// 7b. many endpoints: the goals for its default shape (5,000
	// endpoints, 10 messages each).
	if e := res.Endpoints; e != nil && len(e.Ratios) > 0 {
		m := median(e.Ratios)
		target, met := "", ""
		if e.Endpoints == 5000 {
			target, met = "≥ 0.70", yesNo(m >= 0.70)
		}
		b.row(fmt.Sprintf("%d endpoints, 10 messages each: deliveries/s ÷ one endpoint's with the same messages, median of %d rounds", e.Endpoints, len(e.Ratios)), m, "%.2f", target, met)
		if len(e.ApplyMs) > 0 {
			mx := slicesMax(e.ApplyMs)
			b.row(fmt.Sprintf("  endpoint INSERT → its first delivery, %d endpoints served, ms (max of %d)", e.Endpoints, len(e.ApplyMs)), mx, "%.0f", "≤ 1000", yesNo(mx <= 1000))
		}
	}
	// 8. history
	if h := res.History; h != nil && h.AllOnOff > 0 {
		b.row("history.attempts all ÷ off: drain deliveries/s, ratio of medians (same run)", h.AllOnOff, "%.2f", "≥ 0.8", yesNo(h.AllOnOff >= 0.8))
	}
	b.faultRows()
}

// relayGroup is the median of the many-relays runs of one configuration.
type relayGroup struct {
	relays, gomaxprocs, n, runs int
	steady, rate, machineUs     float64
}

// groupRelays groups runs by configuration, in the order first run.
func groupRelays(runs []DrainResult) []relayGroup {
	type key struct{ relays, gomaxprocs int }
	var order []key
	byKey := map[key][]DrainResult{}
	for _, r := range runs {
		k := key{r.Relays, r.GOMAXPROCS}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], r)
	}
	groups := make([]relayGroup, 0, len(order))
	for _, k := range order {
		rs := byKey[k]
		var steady, rate, cpu []float64
		for _, r := range rs {
			steady, rate, cpu = append(steady, r.SteadyRate), append(rate, r.Rate), append(cpu, r.CPUPerMsgUs.Machine)
		}
		groups = append(groups, relayGroup{relays: k.relays, gomaxprocs: k.gomaxprocs, n: rs[0].N, runs: len(rs),
			steady: median(steady), rate: median(rate), machineUs: median(cpu)})
	}
	return groups
}

func slicesMax(v []float64) float64 {
	m := math.NaN()
	for _, x := range v {
		if math.IsNaN(m) || x > m {
			m = x
		}
	}
	return m
}

func (b *bench) printReport() {
	w := b.out
	res := b.res
	m := res.Machine
	fmt.Fprintf(w, "\n## Herald benchmark (%s, relay mode %s)\n\n", res.Started, res.RelayMode)
	fmt.Fprintf(w, "| metric | value | target | met? |\n|---|---|---|---|\n")
	for _, r := range res.Table {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.Metric, r.Value, r.Target, r.Met)
	}
	fmt.Fprintf(w, "\n### Machine\n\n")
	fmt.Fprintf(w, "- nproc %d; CPU %s; memory %.1f GiB; kernel %s; /proc/loadavg at start: %s (other work on the machine skews absolute figures: compare ratios)\n", m.NProc, m.CPUModel, m.MemoryGiB, m.Kernel, m.LoadAvg)
	fmt.Fprintf(w, "- %s\n- %s\n", m.GoVersion, m.Postgres)
	keys := make([]string, 0, len(m.PGSettings))
	for k := range m.PGSettings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var kv []string
	for _, k := range keys {
		kv = append(kv, k+"="+m.PGSettings[k])
	}
	fmt.Fprintf(w, "- PostgreSQL settings: %s\n", strings.Join(kv, ", "))
	fmt.Fprintf(w, "\n### How it was measured\n\n")
	fmt.Fprintf(w, "- Relay: %s, one endpoint (topics [\"*\"], whsec_ secret: every request signed), delivery.allow_private_networks, otherwise herald.yaml defaults; every drain starts fresh relay process(es) once N rows are committed (1000 per tx, no NOTIFY) and ANALYZEd, after a CHECKPOINT; timed from process start until the receiver has N unique webhook-ids and outbox.messages is empty (acks written).\n", relayModeText(res.RelayMode))
	fmt.Fprintf(w, "- CPU from /proc (relay and receiver processes, all postgres processes, /proc/stat for the machine) over that window; RSS = VmHWM of the relay.\n")
	fmt.Fprintf(w, "- Backlogs of the claim phase are VACUUMed once after they are committed and before the relay starts, as autovacuum does after Herald's insert threshold (the relay's own VACUUM would otherwise pay a fresh table's first full scan inside the measurement); that VACUUM took %s.\n", vacuumTimes(res))
	fmt.Fprintf(w, "- Claim latency: herald_claim_seconds{lane=\"hot\"} scraped from the relay when the slice's first tenth was delivered (warm-up: a new process prepares its statements) and when all of it was; p99 over the difference is the upper bound of the bucket that holds it (buckets 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 25 ms…), with linear interpolation in brackets.\n")
	fmt.Fprintf(w, "- Latency: producers commit one message per transaction with outbox.Enqueue (NOTIFY); latency = receiver's first receipt of the webhook-id − the producer's commit return (same clock).\n")
	fmt.Fprintf(w, "- Writes: pg_stat_user_tables deltas over the outbox tables (backends flushed by exiting), divided by N; \"beyond the producer\" = ins − N + upd + del.\n")
	if len(res.Slow) > 0 {
		d := res.Slow[0]
		fmt.Fprintf(w, "- Slow receivers: %d endpoints, endpoint i on topic slow.i only (herald.yaml defaults otherwise: max_in_flight, timeout), all served by the one receiver process on distinct URLs, each answering 200 after %.0f ms; N=%d messages, message k on topic slow.(k mod %d); steady = deliveries between 10%% and 90%% received over that time; deferred = herald_deferred_total at the end.\n", d.Endpoints, d.DelayMs, d.N, d.Endpoints)
	}
	if c := res.PeerSummary; c != nil {
		fmt.Fprintf(w, "- Peers: %d interleaved rounds (order rotated), N=%d each, all three posting to the %s; river-relay %s, naive-relay %s; CHECKPOINT before each.\n", c.Rounds, c.N, c.Receiver, c.RiverConfig, c.NaiveConfig)
		fmt.Fprintf(w, "\n| round | relay | config | deliveries/s | s | CPU s relay · receiver · postgres · machine |\n|---|---|---|---|---|---|\n")
		for _, p := range res.Peers {
			fmt.Fprintf(w, "| %d | %s | %s | %.0f | %.2f | %.2f · %.2f · %.2f · %.2f |\n", p.Round, p.Relay, p.Variant, p.Rate, p.Seconds, p.CPU["relay"], p.CPU["receiver"], p.CPU["postgres"], p.CPU["total"])
		}
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "- note: %s\n", n)
	}
	for _, e := range res.Errors {
		fmt.Fprintf(w, "- ERROR: %s\n", e)
	}
	if len(res.Profiles) > 0 {
		fmt.Fprintf(w, "- CPU profiles: %s\n", strings.Join(res.Profiles, " "))
	}
	fmt.Fprintln(w)
}

func relayModeText(mode string) string {
	if mode == "binary" {
		return "the herald binary (`herald run --config`, built from ./cmd/herald)"
	}
	return "inproc: the relay library (relay.New with Listen, webhook endpoint with 64 idle conns, pool of 8) in a herald-bench child process"
}

// vacuumTimes lists how long each claim-phase backlog's VACUUM took.
func vacuumTimes(res *Results) string {
	var parts []string
	for _, c := range res.Claims {
		parts = append(parts, fmt.Sprintf("%.2f s for %d rows", c.VacuumSeconds, c.N))
	}
	if len(parts) == 0 {
		return "nothing (no claim phase)"
	}
	return strings.Join(parts, ", ")
}
