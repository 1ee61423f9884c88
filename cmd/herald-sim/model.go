package main

import "math"

// Costs are the CPU microseconds one delivery costs each process, as
// measured by make bench on the 2-core machine (drain phase, one relay, one
// endpoint, receiver and PostgreSQL on the same host).
type Costs struct {
	Relay, Receiver, Postgres, Other float64
}

// Total is the machine's CPU per delivery when everything shares one host.
func (c Costs) Total() float64 { return c.Relay + c.Receiver + c.Postgres + c.Other }

// Model is Herald's throughput model. Its parameters are calibrated on
// measurements (see measured in model_test.go); everything else is derived.
type Model struct {
	Costs Costs
	// RelayCeiling is what one relay process can push however many cores it
	// has: its window (relay.max_in_flight) over the time a claimed row takes
	// to come back as an acknowledgement (claim, request, outcome write),
	// measured as the single-relay drain rate when cores were left over.
	RelayCeiling float64
	// Oversubscription is the extra CPU per delivery, as a share, for each
	// process beyond the host's cores (context switches, cache misses):
	// measured when 4 relays shared 2 cores with PostgreSQL and the receiver.
	Oversubscription float64
	// Utilisation is the share of a host's CPU that work can use at best.
	Utilisation float64
	// SkipLocked is the PostgreSQL CPU per delivery, in microseconds, that
	// each other relay on the same database adds: a claim steps over the
	// rows the others hold (SKIP LOCKED) at the head of the queue. Assumed,
	// not measured: small against Postgres at the relay counts measured.
	SkipLocked float64
	// WALBytes is the write-ahead log one message costs from insert to
	// delete (measured with pg_current_wal_lsn around an insert and a drain
	// of 50,000 messages of about 500 bytes).
	WALBytes float64
	// Vacuum is the PostgreSQL CPU per delivery, in microseconds, of
	// vacuuming the two dead row versions a message leaves (measured: the
	// relay's own VACUUM took 0.64 s for 1M dead rows). It is not in
	// Costs.Postgres, which make bench measures before vacuum runs.
	Vacuum float64
	// WALBandwidth is what the primary's disk and replicas take, in bytes
	// per second. Assumed (a fast NVMe disk with one synchronous replica),
	// not measured here: set it to your own.
	WALBandwidth float64
}

// measured are make bench's figures on the 2-core machine (2026-12-02,
// -quick, relays phase: steady total deliveries/s, GOMAXPROCS default).
var measured = []struct {
	what   string
	relays int
	rate   float64
}{
	{"drain, 1 relay", 1, 29541},
	{"relays phase, 1 relay", 1, 25469},
	{"relays phase, 2 relays", 2, 31751},
	{"relays phase, 4 relays", 4, 23898},
}

// Calibrated is the model fitted to this repository's measurements.
var Calibrated = Model{
	Costs:            Costs{Relay: 19.5, Receiver: 16.5, Postgres: 14.5, Other: 4.0},
	RelayCeiling:     27500,
	Oversubscription: 0.39,
	Utilisation:      0.95,
	SkipLocked:       0.5,
	WALBytes:         1627,
	Vacuum:           1.3,
	WALBandwidth:     400e6,
}

// SharedHost is throughput with relays, receiver and PostgreSQL on one host
// of cores cores, the way make bench measures it.
func (m Model) SharedHost(cores, relays int) float64 {
	processes := float64(relays)
	over := math.Max(0, processes-float64(cores)) / float64(cores)
	perDelivery := m.Costs.Total()*(1+m.Oversubscription*over) + m.SkipLocked*float64(relays-1)
	cpuBound := m.Utilisation * float64(cores) * 1e6 / perDelivery
	return math.Min(float64(relays)*m.RelayCeiling, cpuBound)
}

// Fleet is throughput with relay processes on hosts of their own (a core
// each at least), receivers elsewhere, and one PostgreSQL primary of pgCores
// cores. It returns the rate and what bounds it.
func (m Model) Fleet(relays, pgCores int) (rate float64, bound string) {
	perRelay := math.Min(m.RelayCeiling, m.Utilisation*1e6/m.Costs.Relay)
	relayBound := float64(relays) * perRelay
	pgPerDelivery := m.Costs.Postgres + m.Vacuum + m.SkipLocked*float64(relays-1)
	pgBound := m.Utilisation * float64(pgCores) * 1e6 / pgPerDelivery
	walBound := m.WALBandwidth / m.WALBytes
	switch {
	case relayBound <= pgBound && relayBound <= walBound:
		return relayBound, "relays"
	case pgBound <= walBound:
		return pgBound, "postgres cpu"
	}
	return walBound, "wal bandwidth"
}

// WALRate is the write-ahead log a primary writes at rate messages/s, in
// bytes per second (full-page images after checkpoints come on top).
func (m Model) WALRate(rate float64) float64 { return rate * m.WALBytes }
