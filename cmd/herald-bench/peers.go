package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PeerRun is one drain by a peer program (or by Herald in the same rounds).
type PeerRun struct {
	Round   int                `json:"round"`
	Relay   string             `json:"relay"`
	Variant string             `json:"variant"`
	N       int                `json:"n"`
	Rate    float64            `json:"deliveries_per_s"`
	Seconds float64            `json:"seconds"`
	CPU     map[string]float64 `json:"cpu_s,omitempty"`
	Insert  float64            `json:"insert_rows_per_s,omitempty"`
}

// PeerComparison summarises the rounds: medians and ratios.
type PeerComparison struct {
	Rounds        int     `json:"rounds"`
	N             int     `json:"n"`
	Receiver      string  `json:"receiver"`
	HeraldMedian  float64 `json:"herald_median"`
	RiverMedian   float64 `json:"river_median"`
	NaiveMedian   float64 `json:"naive_median"`
	HeraldOnRiver float64 `json:"herald_over_river"`
	HeraldOnNaive float64 `json:"herald_over_naive"`
	RiverConfig   string  `json:"river_config"`
	NaiveConfig   string  `json:"naive_config"`
}

const (
	peersReceiverAddr = "127.0.0.1:18080"
	peersDSN          = "postgres://bench:bench@127.0.0.1:5432/peers?sslmode=disable"
)

var (
	riverArgs = []string{"-workers", "200", "-fetch-cooldown", "10ms"}
	// riverSlowWorkers are River's worker counts against slow receivers,
	// where what bounds it is the requests it keeps in flight (workers ÷
	// delay): its drain configuration's 200, and Herald's default window.
	riverSlowWorkers = []int{200, 4096}
	naiveArgs        = []string{"-workers", "4", "-limit", "100"}
)

// drainRounds alternates Herald with River and the naive relay (when the
// peers are available), rotating the order each round; without peers it
// runs Herald's drain rounds alone against herald-bench's receiver.
func (b *bench) drainRounds(ctx context.Context) error {
	bin, peerRecv, err := b.setupPeers(ctx)
	if err != nil {
		b.note("peers skipped: %v", err)
	}
	if peerRecv != nil {
		defer peerRecv.stop()
	}
	recv := b.recv
	n := b.opt.n
	if peerRecv != nil {
		recv = peerRecv // one receiver for all three, so the comparison is fair
		n = b.opt.peerN
	}
	for round := range b.opt.rounds {
		order := []string{"herald"}
		if peerRecv != nil {
			order = []string{"herald", "river-relay", "naive-relay"}
			k := round % len(order)
			order = append(order[k:], order[:k]...)
		}
		b.say("round %d/%d: %s", round+1, b.opt.rounds, strings.Join(order, ", "))
		for _, who := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if who == "herald" {
				r, err := b.drain(ctx, drainSpec{label: fmt.Sprintf("drain round %d", round+1), n: n, slice: min(n, b.opt.slice), relays: 1, recv: recv, writes: true})
				if err != nil {
					return err
				}
				b.logDrain(r)
				b.res.Drains = append(b.res.Drains, r)
				if peerRecv != nil {
					b.res.Peers = append(b.res.Peers, PeerRun{Round: round + 1, Relay: "herald", Variant: "herald " + b.mode + ", default config", N: n,
						Rate: r.Rate, Seconds: r.Seconds, Insert: r.PreloadRate,
						CPU: map[string]float64{"relay": r.CPU.Relay, "receiver": r.CPU.Receiver, "postgres": r.CPU.Postgres, "total": r.CPU.Machine}})
				}
				continue
			}
			if err := b.checkpoint(ctx); err != nil {
				return err
			}
			args := naiveArgs
			if who == "river-relay" {
				args = riverArgs
			}
			pr, err := b.runPeer(ctx, filepath.Join(bin, who), who, n, args)
			if err != nil {
				return err
			}
			pr.Round = round + 1
			b.say("   %s %s: %.0f deliveries/s (%.2fs)", who, pr.Variant, pr.Rate, pr.Seconds)
			b.res.Peers = append(b.res.Peers, pr)
		}
	}
	if peerRecv != nil {
		c := &PeerComparison{Rounds: b.opt.rounds, N: n, Receiver: "peers receiver (" + peersReceiverAddr + ")",
			RiverConfig: strings.Join(riverArgs, " "), NaiveConfig: strings.Join(naiveArgs, " ")}
		var h, rv, nv []float64
		for _, p := range b.res.Peers {
			switch p.Relay {
			case "herald":
				h = append(h, p.Rate)
			case "river-relay":
				rv = append(rv, p.Rate)
			case "naive-relay":
				nv = append(nv, p.Rate)
			}
		}
		c.HeraldMedian, c.RiverMedian, c.NaiveMedian = median(h), median(rv), median(nv)
		if c.RiverMedian > 0 {
			c.HeraldOnRiver = round(c.HeraldMedian/c.RiverMedian, 2)
		}
		if c.NaiveMedian > 0 {
			c.HeraldOnNaive = round(c.HeraldMedian/c.NaiveMedian, 2)
		}
		b.res.PeerSummary = c
		b.say("   medians: herald %.0f, river %.0f, naive %.0f => herald/river %.2f", c.HeraldMedian, c.RiverMedian, c.NaiveMedian, c.HeraldOnRiver)
	}
	return nil
}

// setupPeers builds the peers (buildPeers) and starts the peers' receiver
// on 127.0.0.1:18080. A nil receiver and an error mean: skip.
func (b *bench) setupPeers(ctx context.Context) (string, *recvTarget, error) {
	bin, err := b.buildPeers(ctx)
	if err != nil {
		return "", nil, err
	}
	c := http.Client{Timeout: time.Second}
	if resp, err := c.Get("http://" + peersReceiverAddr + "/stats"); err == nil {
		resp.Body.Close()
		return "", nil, fmt.Errorf("something already listens on %s; stop it first", peersReceiverAddr)
	}
	rc := exec.Command(filepath.Join(bin, "receiver"), "-addr", peersReceiverAddr, "-ttl", "1h")
	rc.Stdout, rc.Stderr = b.logFile("peers-receiver.log"), b.logFile("peers-receiver.err")
	if err := rc.Start(); err != nil {
		return "", nil, err
	}
	r := &recvTarget{name: "peers receiver", base: "http://" + peersReceiverAddr, pid: rc.Process.Pid, cmd: rc}
	for range 100 {
		if _, err := r.stats(); err == nil {
			return bin, r, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.stop()
	return "", nil, fmt.Errorf("peers receiver did not start")
}

// buildPeers builds the peer programs into the work dir, once per run, and
// creates the bench role and peers database as the peers' run.sh does. It
// returns the directory of the binaries; an error means: skip the peers.
func (b *bench) buildPeers(ctx context.Context) (string, error) {
	if b.peersBin != "" || b.peersErr != nil {
		return b.peersBin, b.peersErr
	}
	b.peersBin, b.peersErr = b.buildPeersOnce(ctx)
	return b.peersBin, b.peersErr
}

func (b *bench) buildPeersOnce(ctx context.Context) (string, error) {
	if b.opt.noPeers {
		return "", fmt.Errorf("-no-peers")
	}
	dir := b.opt.peers
	if dir == "" {
		dir = filepath.Join(b.root, "..", "shared", "peers")
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("no peers module at %s (pass -peers DIR)", dir)
	}
	bin := filepath.Join(b.tmp, "peers")
	b.say("building peers from %s", dir)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "./cmd/river-relay", "./cmd/naive-relay", "./cmd/receiver")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build peers: %v: %s", err, firstLine(string(out)))
	}
	admin, err := pgx.Connect(ctx, b.opt.adminDSN)
	if err != nil {
		return "", err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench') THEN
		CREATE ROLE bench SUPERUSER LOGIN PASSWORD 'bench'; END IF; END $$`); err != nil {
		return "", fmt.Errorf("create role bench: %w", err)
	}
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'peers')").Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := admin.Exec(ctx, "CREATE DATABASE peers OWNER bench"); err != nil {
			return "", fmt.Errorf("create database peers: %w", err)
		}
	}
	return bin, nil
}

// runPeer runs one peer drain and parses its RESULT line.
func (b *bench) runPeer(ctx context.Context, path, name string, n int, args []string) (PeerRun, error) {
	pr := PeerRun{Relay: name, Variant: strings.Join(args, " "), N: n}
	timeout := 120*time.Second + time.Duration(n)*time.Millisecond // >= 1k/s
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	full := append([]string{"-n", strconv.Itoa(n), "-timeout", timeout.String()}, args...)
	cmd := exec.CommandContext(cctx, path, full...)
	cmd.Env = append(os.Environ(), "PEERS_DSN="+peersDSN)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return pr, fmt.Errorf("%s %s: %v: %s", name, strings.Join(full, " "), err, firstLine(stderr.String()))
	}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "RESULT ")
		if !ok {
			continue
		}
		var res struct {
			Metric  string             `json:"metric"`
			Value   float64            `json:"value"`
			Elapsed float64            `json:"elapsed_s"`
			CPU     map[string]float64 `json:"cpu_s"`
		}
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			continue
		}
		switch res.Metric {
		case "deliveries/s":
			pr.Rate, pr.Seconds, pr.CPU = res.Value, res.Elapsed, res.CPU
		case "rows/s":
			pr.Insert = res.Value
		}
	}
	if pr.Rate == 0 {
		return pr, fmt.Errorf("%s printed no deliveries/s RESULT line", name)
	}
	return pr, nil
}
