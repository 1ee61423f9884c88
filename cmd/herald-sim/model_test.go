package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestModelReproducesTheMeasurements: the calibrated model is within the
// machine's run-to-run noise (±15%) of every measured point, so its
// projections start from what was seen.
func TestModelReproducesTheMeasurements(t *testing.T) {
	for _, p := range measured {
		got := Calibrated.SharedHost(2, p.relays)
		require.InEpsilon(t, p.rate, got, 0.15, "%s: measured %.0f, model %.0f", p.what, p.rate, got)
	}
}

func TestSizeFleetReachesTheTarget(t *testing.T) {
	relays, pgCores := sizeFleet(Calibrated, 100000)
	rate, _ := Calibrated.Fleet(relays, pgCores)
	require.GreaterOrEqual(t, rate, 100000.0)
	less, _ := Calibrated.Fleet(relays-1, pgCores)
	require.Less(t, less, 100000.0, "the fewest relays")

	var out bytes.Buffer
	report(&out, Calibrated, 100000)
	require.Contains(t, out.String(), "100000 deliveries/s:")
}
