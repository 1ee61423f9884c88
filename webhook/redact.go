package webhook

import (
	"net/url"
	"regexp"
	"strings"
)

// redactedPart replaces what RedactURL hides.
const redactedPart = "redacted"

// RedactURL returns raw fit for a log or an error: user info and query
// values (a query part without "=" is a value too) replaced by "redacted",
// query keys kept, a fragment replaced. A raw URL that does not parse gives
// "<unparseable URL: why>", without any of its text: url.Parse errors quote
// the URL, or parts of it such as a password taken for a port.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL: " + parseProblem(err) + ">"
	}
	return redactedURL(u)
}

// redactedURL is RedactURL for a parsed URL; u is not modified.
func redactedURL(u *url.URL) string {
	if u.User == nil && u.RawQuery == "" && u.Fragment == "" && u.Opaque == "" {
		return u.String()
	}
	r := *u
	if r.User != nil {
		r.User = url.User(redactedPart)
	}
	if r.Opaque != "" {
		// mailto:user@host, or an unparsed "host:port/path": nothing in it
		// is known to be safe.
		r.Opaque = redactedPart
	}
	if r.RawQuery != "" {
		parts := strings.Split(r.RawQuery, "&")
		for i, p := range parts {
			if k, _, ok := strings.Cut(p, "="); ok {
				parts[i] = k + "=" + redactedPart
			} else {
				parts[i] = redactedPart
			}
		}
		r.RawQuery = strings.Join(parts, "&")
		r.ForceQuery = false
	}
	if r.Fragment != "" {
		r.Fragment, r.RawFragment = redactedPart, ""
	}
	return r.String()
}

// quoted matches the quoted parts of url.Parse's errors ("invalid port
// \":s3cret\" after host").
var quoted = regexp.MustCompile(`\s*"(?:[^"\\]|\\.)*"`)

// parseProblem says why url.Parse failed, without the text it quotes.
func parseProblem(err error) string {
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err
	}
	return quoted.ReplaceAllString(err.Error(), "")
}
