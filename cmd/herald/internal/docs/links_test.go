// Package docs_test checks the repository's Markdown: README.md and docs/*.md
// link to each other by relative paths and #anchors, and a section moved from
// one file to another silently breaks every link to it. GitHub renders a
// broken anchor as a link to the top of the page, so nobody notices unless a
// test does.
package docs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
)

// TestDocLinks checks every relative link and anchor in README.md and
// docs/*.md, and that the README links to every page under docs/: a page
// nobody links to is a page a newcomer never finds.
func TestDocLinks(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	problems, err := checkDocs(root)
	require.NoError(t, err)
	require.Empty(t, problems, "broken documentation links:\n%s", strings.Join(problems, "\n"))
}

// TestDocLinksReportsBroken keeps the checker honest: each kind of broken
// link in a small tree of its own is reported, and good links are not.
func TestDocLinksReportsBroken(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		path := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	}
	write("config.example.yaml", "x: 1\n")
	write("README.md", strings.Join([]string{
		"# Herald",
		"## Quick start, in `two` commands",
		"[ok](#quick-start-in-two-commands) [ok](docs/a.md#one) [ok](config.example.yaml)",
		"[ok](https://example.com/x#y) [ok](docs/a.md) [ok](#herald)",
		"[bad anchor](#guarantees-in-detail) [bad file](docs/gone.md) [bad](docs/a.md#three)",
		"```",
		"[ignored in code](#nowhere)",
		"```",
		"`[ignored inline](#nowhere)`",
	}, "\n"))
	write("docs/a.md", "# One\n## Two\n## Two\n[ok](two) [ok](#two-1) [ok](../README.md#herald) [bad](#two-2)\n")
	write("docs/unlinked.md", "# Unlinked\n")

	problems, err := checkDocs(root)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{
		`README.md:5: #guarantees-in-detail: no such heading in README.md`,
		`README.md:5: docs/gone.md: no such file`,
		`README.md:5: docs/a.md#three: no such heading in docs/a.md`,
		`docs/a.md:4: two: no such file`,
		`docs/a.md:4: #two-2: no such heading in docs/a.md`,
		`docs/unlinked.md: not linked from README.md`,
	}, problems)
}

// checkDocs returns one line per problem in README.md and docs/*.md under
// root, each naming the file and line.
func checkDocs(root string) ([]string, error) {
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	files := []string{"README.md"}
	for _, p := range pages {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return nil, err
		}
		files = append(files, filepath.ToSlash(rel))
	}

	anchors := map[string]map[string]bool{} // file -> its headings' anchors
	links := map[string][]link{}
	for _, f := range files {
		text, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return nil, err
		}
		anchors[f], links[f] = parseMarkdown(string(text))
	}

	var problems []string
	linkedFromReadme := map[string]bool{}
	for _, f := range files {
		for _, l := range links[f] {
			path, anchor, _ := strings.Cut(l.target, "#")
			target := f // a bare #anchor points into the same file
			if path != "" {
				target = filepath.ToSlash(filepath.Join(filepath.Dir(f), path))
				if _, err := os.Stat(filepath.Join(root, target)); err != nil {
					problems = append(problems, fmt.Sprintf("%s:%d: %s: no such file", f, l.line, l.target))
					continue
				}
				if f == "README.md" {
					linkedFromReadme[target] = true
				}
			}
			if anchor == "" {
				continue
			}
			have, ok := anchors[target]
			if !ok && strings.HasSuffix(target, ".md") {
				text, err := os.ReadFile(filepath.Join(root, target))
				if err != nil {
					return nil, err
				}
				have, _ = parseMarkdown(string(text))
				anchors[target] = have
			}
			if !have[anchor] {
				problems = append(problems, fmt.Sprintf("%s:%d: %s: no such heading in %s", f, l.line, l.target, target))
			}
		}
	}
	for _, f := range files[1:] {
		if !linkedFromReadme[f] {
			problems = append(problems, f+": not linked from README.md")
		}
	}
	return problems, nil
}

// link is one Markdown link to a relative path or an anchor.
type link struct {
	line   int
	target string
}

var (
	headingRE = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	// A link's target, in [text](target) or [text](target "title").
	linkRE   = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeRE   = regexp.MustCompile("`[^`]*`")
	schemeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// parseMarkdown returns the anchors GitHub gives the headings of text and
// its links to relative paths and anchors. Fenced code blocks and inline
// code are skipped: what they show is not a link.
func parseMarkdown(text string) (map[string]bool, []link) {
	anchors := map[string]bool{}
	seen := map[string]int{}
	var links []link
	inFence := false
	for i, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		if m := headingRE.FindStringSubmatch(line); m != nil {
			a := anchor(m[1])
			// GitHub numbers repeated headings: two, two-1, two-2.
			if n := seen[a]; n > 0 {
				anchors[a+"-"+strconv.Itoa(n)] = true
			} else {
				anchors[a] = true
			}
			seen[a]++
		}
		for _, m := range linkRE.FindAllStringSubmatch(codeRE.ReplaceAllString(line, ""), -1) {
			if schemeRE.MatchString(m[1]) {
				continue // https:, mailto:: not ours to check
			}
			links = append(links, link{line: i + 1, target: m[1]})
		}
	}
	return anchors, links
}

// anchor is GitHub's anchor for a heading: lower case, letters, digits,
// '-' and '_' kept, spaces turned into '-', everything else dropped.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// repoRoot is the directory holding go.mod, above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
