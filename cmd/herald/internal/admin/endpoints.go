package admin

import (
	"net/http"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

// endpointOut is the body of every route that returns one endpoint.
type endpointOut struct {
	Endpoint ops.EndpointView `json:"endpoint"`
	// Warning is a problem only this server's configuration has (see
	// ops.CheckEndpoint); the write was made.
	Warning string `json:"warning,omitempty"`
}

// endpointIn is the body of POST /v1/endpoints.
type endpointIn struct {
	Name string `json:"name"`
	// Disabled creates the endpoint disabled, with DisabledReason.
	Disabled       bool   `json:"disabled"`
	DisabledReason string `json:"disabled_reason"`
	ops.EndpointChange
}

func listEndpoints(r *request) (int, any, error) {
	if err := onlyQuery(r, "source"); err != nil {
		return 0, nil, err
	}
	eps, skipped, err := ops.ListEndpoints(r.ctx, r.db)
	views := make([]ops.EndpointView, len(eps))
	for i, ep := range eps {
		views[i] = ep.View()
	}
	if skipped == nil {
		skipped = []ops.RowError{}
	}
	return http.StatusOK, struct {
		Endpoints []ops.EndpointView `json:"endpoints"`
		// Unreadable are rows that cannot be read as endpoints, left out.
		Unreadable []ops.RowError `json:"unreadable"`
	}{views, skipped}, err
}

func getEndpoint(r *request) (int, any, error) {
	if err := onlyQuery(r, "source"); err != nil {
		return 0, nil, err
	}
	ep, err := ops.GetEndpoint(r.ctx, r.db, r.PathValue("name"))
	return http.StatusOK, endpointOut{Endpoint: ep.View()}, err
}

// check is ops.CheckEndpoint with this server's configuration, as
// `herald endpoints add` and `update` run it.
func (a *api) check(ep ops.Endpoint) (warning string, err error) {
	w, err := ops.CheckEndpoint(a.herald, ep)
	if w != nil {
		warning = w.Error()
	}
	return warning, err
}

// addEndpoint creates an endpoint of source cli, as `herald endpoints add`.
func (a *api) addEndpoint(r *request) (int, any, error) {
	if err := onlyQuery(r, "source"); err != nil {
		return 0, nil, err
	}
	var in endpointIn
	if err := decodeBody(r.Request, &in, false); err != nil {
		return 0, nil, err
	}
	ep := ops.Endpoint{Endpoint: config.Endpoint{Name: in.Name, Disabled: in.Disabled}, DisabledReason: in.DisabledReason, Source: ops.SourceCLI}
	in.Apply(&ep)
	warning, err := a.check(ep)
	if err != nil {
		return 0, nil, err
	}
	if err := ops.AddEndpoint(r.ctx, r.db, ep); err != nil {
		return 0, nil, err
	}
	stored, err := ops.GetEndpoint(r.ctx, r.db, ep.Name)
	return http.StatusCreated, endpointOut{Endpoint: stored.View(), Warning: warning}, err
}

// updateEndpoint changes the settings the body names, as `herald endpoints
// update` with the flags given.
func (a *api) updateEndpoint(r *request) (int, any, error) {
	if err := onlyQuery(r, "source"); err != nil {
		return 0, nil, err
	}
	var change ops.EndpointChange
	if err := decodeBody(r.Request, &change, false); err != nil {
		return 0, nil, err
	}
	var warning string
	stored, err := ops.UpdateEndpoint(r.ctx, r.db, r.PathValue("name"), func(ep *ops.Endpoint) error {
		change.Apply(ep)
		var err error
		warning, err = a.check(*ep)
		return err
	})
	return http.StatusOK, endpointOut{Endpoint: stored.View(), Warning: warning}, err
}

func removeEndpoint(r *request) (int, any, error) {
	if err := onlyQuery(r, "source"); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, ops.RemoveEndpoint(r.ctx, r.db, r.PathValue("name"))
}

func enableEndpoint(r *request) (int, any, error) {
	if err := onlyQuery(r, "source"); err != nil {
		return 0, nil, err
	}
	if err := decodeBody(r.Request, &struct{}{}, true); err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	if err := ops.EnableEndpoint(r.ctx, r.db, name); err != nil {
		return 0, nil, err
	}
	return getEndpoint(r)
}

func disableEndpoint(r *request) (int, any, error) {
	if err := onlyQuery(r, "source"); err != nil {
		return 0, nil, err
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if err := decodeBody(r.Request, &body, true); err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	if err := ops.DisableEndpoint(r.ctx, r.db, name, body.Reason); err != nil {
		return 0, nil, err
	}
	return getEndpoint(r)
}
