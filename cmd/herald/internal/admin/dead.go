package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

// DeadListLimitMax caps ?limit= of GET /v1/dead, which answers in one
// response; the default is ops.DeadListLimitDefault.
const DeadListLimitMax = 1000

// onlyQuery refuses a query parameter other than allowed, so that a typo
// in a filter never widens what a request lists.
func onlyQuery(r *request, allowed ...string) error {
	for k := range r.URL.Query() {
		if !slices.Contains(allowed, k) {
			return unknownParameter(k)
		}
	}
	return nil
}

// unknownParameter is the 400 of a query parameter no route takes; one
// without a name ("?=x") is blamed on the query.
func unknownParameter(name string) error {
	if name == "" {
		return badRequest("query", "has a parameter without a name")
	}
	return badRequest(name, "unknown query parameter")
}

// deadQuery reads the filters of GET /v1/dead and /v1/dead/count.
func deadQuery(r *request, withLimit bool) (ops.DeadFilter, error) {
	allowed := []string{"source", "id", "endpoint", "reason", "older_than"}
	if withLimit {
		allowed = append(allowed, "limit")
	}
	if err := onlyQuery(r, allowed...); err != nil {
		return ops.DeadFilter{}, err
	}
	q := r.URL.Query()
	f := ops.DeadFilter{ID: q.Get("id"), Endpoint: q.Get("endpoint"), Reason: q.Get("reason")}
	var err error
	if f.OlderThan, err = parseDuration("older_than", q.Get("older_than")); err != nil {
		return f, err
	}
	if withLimit {
		f.Limit = ops.DeadListLimitDefault
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > DeadListLimitMax {
				return f, badRequest("limit", fmt.Sprintf("must be a whole number from 1 to %d (got %q)", DeadListLimitMax, s))
			}
			f.Limit = n
		}
	}
	return f, nil
}

func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, badRequest(field, fmt.Sprintf(`must be a duration such as "90m" or "72h" (got %q)`, s))
	}
	return d, nil
}

func listDead(r *request) (int, any, error) {
	f, err := deadQuery(r, true)
	if err != nil {
		return 0, nil, err
	}
	list, err := ops.ListDead(r.ctx, r.db, f)
	return http.StatusOK, struct {
		Dead []ops.DeadMessage `json:"dead"`
	}{list}, err
}

func countDead(r *request) (int, any, error) {
	f, err := deadQuery(r, false)
	if err != nil {
		return 0, nil, err
	}
	n, err := ops.CountDead(r.ctx, r.db, f)
	return http.StatusOK, struct {
		Count int64 `json:"count"`
	}{n}, err
}

// deadAction is the body of POST /v1/dead/replay and /v1/dead/purge.
type deadAction struct {
	ID        string `json:"id"`
	Endpoint  string `json:"endpoint"`
	Reason    string `json:"reason"`
	OlderThan string `json:"older_than"`
	DryRun    bool   `json:"dry_run"`
	// Limit and All: replay only.
	Limit *int  `json:"limit"`
	All   *bool `json:"all"`
}

func (d deadAction) filter() (ops.DeadFilter, error) {
	f := ops.DeadFilter{ID: d.ID, Endpoint: d.Endpoint, Reason: d.Reason}
	if d.Limit != nil {
		f.Limit = *d.Limit
	}
	if d.All != nil {
		f.All = *d.All
	}
	var err error
	f.OlderThan, err = parseDuration("older_than", d.OlderThan)
	return f, err
}

func replayDead(r *request) (int, any, error) {
	var body deadAction
	if err := decodeBody(r.Request, &body, false); err != nil {
		return 0, nil, err
	}
	f, err := body.filter()
	if err != nil {
		return 0, nil, err
	}
	replay := ops.ReplayDead
	if body.DryRun {
		replay = ops.ReplayDeadDryRun
	}
	res, err := replay(r.ctx, r.db, f)
	return http.StatusOK, res, err
}

func purgeDead(r *request) (int, any, error) {
	var body deadAction
	if err := decodeBody(r.Request, &body, false); err != nil {
		return 0, nil, err
	}
	// As `herald dead purge`, which has no --limit or --all: a field the
	// purge would not honour is refused rather than ignored.
	switch {
	case body.Limit != nil:
		return 0, nil, badRequest("limit", "not taken by a purge")
	case body.All != nil:
		return 0, nil, badRequest("all", "not taken by a purge (older_than selects what is purged)")
	}
	f, err := body.filter()
	if err != nil {
		return 0, nil, err
	}
	purge := ops.PurgeDead
	if body.DryRun {
		purge = ops.PurgeDeadDryRun
	}
	res, err := purge(r.ctx, r.db, f)
	return http.StatusOK, res, err
}
