package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/herald-relay/herald/webhook"
)

// Release builds stamp these with -ldflags (see .goreleaser.yaml):
//
//	-X main.version=1.2.3 -X main.commit=<sha> -X main.date=<RFC 3339>
var version, commit, date string

// buildInfo is what `herald version` prints.
type buildInfo struct {
	Version, Commit, Date string
	Modified              bool // built from a checkout with uncommitted changes
}

// String is the line `herald version` prints, e.g.
// "herald 1.2.3 (commit 0123abc, built 2026-01-02T03:04:05Z, go1.26.8 linux/amd64)".
func (b buildInfo) String() string {
	var parts []string
	if b.Commit != "" {
		c := b.Commit
		if b.Modified {
			c += " with local changes"
		}
		parts = append(parts, "commit "+c)
	}
	if b.Date != "" {
		parts = append(parts, "built "+b.Date)
	}
	parts = append(parts, runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("herald %s (%s)", b.Version, strings.Join(parts, ", "))
}

// currentBuild returns the values -ldflags stamped, or else those the Go
// toolchain recorded in the binary: the module's version for `go install
// github.com/herald-relay/herald/cmd/herald@v1.2.3`, and the commit and
// its time for a build from a git checkout. Without either, the version
// is webhook.Version, the source's own.
func currentBuild() buildInfo {
	b := buildInfo{Version: version, Commit: commit, Date: date}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; b.Version == "" && v != "" && v != "(devel)" {
			b.Version = strings.TrimPrefix(v, "v")
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && b.Commit == "":
				b.Commit = s.Value
			case s.Key == "vcs.time" && b.Date == "":
				b.Date = s.Value
			case s.Key == "vcs.modified" && commit == "":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = webhook.Version
	}
	return b
}
