package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// result is one scenario's row. Delivered counts (message, endpoint) pairs
// a receiver accepted with a 2xx; Parked those in outbox.dead with the
// reason the scenario expects; Lost those neither delivered, parked nor
// queued (must be 0); Stuck those still queued when the scenario's time was
// up. Stall is the longest gap between two first deliveries, Slowest the
// longest a message waited from commit to its first delivery. Duplicates are 2xx answers beyond the first per pair, except LateDups:
// those after a 2xx the receiver gave once the relay had timed out (a retry
// the relay had to make).
type result struct {
	Scenario        string         `json:"scenario"`
	Committed       int            `json:"committed"`
	Pairs           int            `json:"pairs"`
	Delivered       int            `json:"delivered"`
	Parked          int            `json:"parked"`
	Purged          int            `json:"purged"`
	Lost            int            `json:"lost"`
	Stuck           int            `json:"stuck"`
	Misparked       int            `json:"misparked"`
	Misrouted       int            `json:"misrouted"`
	Duplicates      int            `json:"duplicates"`
	LateDups        int            `json:"late_duplicates"`
	OrderViolations int            `json:"order_violations"`
	Requests        int64          `json:"requests"`
	Hostile         map[string]int `json:"hostile,omitempty"`
	Stall           time.Duration  `json:"stall_ns"`
	Slowest         time.Duration  `json:"slowest_ns"`
	Wall            time.Duration  `json:"wall_ns"`
	Failed          []string       `json:"failed,omitempty"`
	Notes           []string       `json:"notes,omitempty"`
	LogLines        []string       `json:"herald_log,omitempty"`
	Logs            string         `json:"logs"`
	Err             string         `json:"error,omitempty"`
}

// ok is true when the scenario kept the promise and its own checks held.
func (r result) ok() bool { return r.Err == "" && r.Lost == 0 && len(r.Failed) == 0 }

func (r result) stall() string { return dur(r.Stall) }

func (r result) slowest() string { return dur(r.Slowest) }

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(10 * time.Millisecond).String()
}

func (r result) dups() string {
	s := fmt.Sprint(r.Duplicates)
	if r.LateDups > 0 {
		s += fmt.Sprintf(" (+%d late)", r.LateDups)
	}
	return s
}

func (r result) verdict() string {
	if r.ok() {
		return "ok"
	}
	return "FAIL"
}

// printTable prints one row per scenario, then printDetails.
func printTable(w io.Writer, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tCOMMITTED\tPAIRS\tDELIVERED\tPARKED\tLOST\tSTUCK\tDUPLICATES\tSTALL\tSLOWEST\tWALL\tRESULT")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Committed, r.Pairs, r.Delivered,
			r.Parked, r.Lost, r.Stuck, r.dups(), r.stall(), r.slowest(), r.Wall.Round(100*time.Millisecond), r.verdict())
	}
	tw.Flush()
	printDetails(w, rs)
}

// printDetails prints, for each scenario that failed or has notes, what
// failed, the notes, and herald's error and warning lines when it failed.
func printDetails(w io.Writer, rs []result) {
	for _, r := range rs {
		if r.ok() && len(r.Notes) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (logs: %s)\n", r.Scenario, r.Logs)
		if r.Err != "" {
			fmt.Fprintf(w, "  error: %s\n", r.Err)
		}
		for _, f := range r.Failed {
			fmt.Fprintf(w, "  failed: %s\n", f)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		if !r.ok() {
			for i, l := range r.LogLines {
				if i == 8 {
					fmt.Fprintf(w, "  herald: … %d more kinds\n", len(r.LogLines)-i)
					break
				}
				fmt.Fprintf(w, "  herald: %s\n", l)
			}
		}
	}
}

// printMarkdown prints the table for "Guarantees and how they are tested"
// in docs/guarantees.md.
func printMarkdown(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| Scenario | Committed | Delivered or parked | Lost | Duplicates | Longest stall | Slowest message | Wall time | Result |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rs {
		got := fmt.Sprint(r.Delivered)
		if r.Parked > 0 {
			got += fmt.Sprintf(" + %d parked", r.Parked)
		}
		if r.Pairs != r.Committed {
			got += fmt.Sprintf(" of %d pairs", r.Pairs)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %d | %s | %s | %s | %s | %s |\n", r.Scenario, r.Committed, got, r.Lost,
			r.dups(), r.stall(), r.slowest(), r.Wall.Round(100*time.Millisecond), r.verdict())
	}
}

func printJSON(w io.Writer, rs []result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rs)
}
