// Command herald-sim projects Herald's throughput beyond the machine it was
// measured on, from a model calibrated on make bench's figures (see
// docs/scaling.md). It prints the measured points beside the model's, then
// projections for larger hosts and fleets.
//
//	go run ./cmd/herald-sim
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

func main() {
	fs := flag.NewFlagSet("herald-sim", flag.ContinueOnError)
	target := fs.Float64("target", 100000, "deliveries/s to size a fleet for")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	report(os.Stdout, Calibrated, *target)
}

func report(out io.Writer, m Model, target float64) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "measured on one 2-core host\trelays\tmeasured/s\tmodel/s\t")
	for _, p := range measured {
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%.0f\t\n", p.what, p.relays, p.rate, m.SharedHost(2, p.relays))
	}
	w.Flush()

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "one shared host\tcores\trelays\tmodel/s\t")
	for _, cores := range []int{2, 4, 8, 16} {
		best, bestRelays := 0.0, 0
		for relays := 1; relays <= 2*cores; relays++ {
			if r := m.SharedHost(cores, relays); r > best {
				best, bestRelays = r, relays
			}
		}
		fmt.Fprintf(w, "best relay count\t%d\t%d\t%.0f\t\n", cores, bestRelays, best)
	}
	w.Flush()

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "fleet: relays on their own hosts\trelays\tpostgres cores\tmodel/s\tbound by\tWAL MB/s\t")
	for _, f := range []struct{ relays, pgCores int }{{1, 4}, {2, 4}, {4, 4}, {8, 4}, {8, 8}, {16, 16}, {32, 32}} {
		rate, bound := m.Fleet(f.relays, f.pgCores)
		fmt.Fprintf(w, "\t%d\t%d\t%.0f\t%s\t%.0f\t\n", f.relays, f.pgCores, rate, bound, m.WALRate(rate)/1e6)
	}
	w.Flush()

	relays, pgCores := sizeFleet(m, target)
	rate, bound := m.Fleet(relays, pgCores)
	fmt.Fprintf(out, "\n%.0f deliveries/s: %d relay processes and a %d-core primary (model %.0f/s, bound by %s), %.0f MB/s of WAL\n",
		target, relays, pgCores, rate, bound, m.WALRate(target)/1e6)
}

// sizeFleet finds the fewest relays, then the fewest PostgreSQL cores, that
// reach target in the model (bounded: 1,000 relays, 256 cores).
func sizeFleet(m Model, target float64) (relays, pgCores int) {
	for pgCores = 1; pgCores <= 256; pgCores *= 2 {
		for relays = 1; relays <= 1000; relays++ {
			if r, _ := m.Fleet(relays, pgCores); r >= target {
				return relays, pgCores
			}
		}
	}
	return 0, 0
}
