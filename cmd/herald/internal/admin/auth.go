package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
)

// tokenSet holds the configured tokens as SHA-256 digests, so that every
// comparison is of 32 bytes, in constant time, whatever the lengths.
type tokenSet []token

type token struct {
	name   string
	digest [sha256.Size]byte
	write  bool
}

func newTokenSet(tokens []config.AdminToken) tokenSet {
	ts := make(tokenSet, len(tokens))
	for i, t := range tokens {
		ts[i] = token{name: t.Name, digest: sha256.Sum256([]byte(t.Token.Value())), write: t.Access == config.AdminAccessWrite}
	}
	return ts
}

// find returns the token whose value is given. It compares given with
// every token, never stopping early, so that its time says nothing about
// which token, if any, matched.
func (ts tokenSet) find(given string) (token, bool) {
	d := sha256.Sum256([]byte(given))
	var found token
	ok := 0
	for _, t := range ts {
		if subtle.ConstantTimeCompare(d[:], t.digest[:]) == 1 {
			found, ok = t, 1
		}
	}
	return found, ok == 1
}

// authorize checks r's bearer token for a route that writes or not. It
// returns the token's name (for logs), and when the request is refused a
// status (401 or 403) and its error; status 0 lets it through.
func (ts tokenSet) authorize(r *http.Request, write bool) (name string, status int, _ apiError) {
	h := r.Header.Get("Authorization")
	scheme, given, _ := strings.Cut(h, " ")
	given = strings.TrimSpace(given)
	switch {
	case h == "":
		return "", http.StatusUnauthorized, apiError{Error: "missing Authorization: Bearer <token>", Field: "Authorization"}
	case !strings.EqualFold(scheme, "Bearer") || given == "":
		return "", http.StatusUnauthorized, apiError{Error: "Authorization must be Bearer <token>", Field: "Authorization"}
	}
	t, ok := ts.find(given)
	switch {
	case !ok:
		return "", http.StatusUnauthorized, apiError{Error: "unknown token", Field: "Authorization"}
	case write && !t.write:
		return t.name, http.StatusForbidden, apiError{Error: "token " + t.name + " is read-only; this route needs a write token"}
	}
	return t.name, 0, apiError{}
}
