package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// twoEndpoints is a valid endpoints section; tests put sources after it.
var twoEndpoints = "endpoints:\n" +
	"  - name: billing\n    url: https://billing.example.com\n    secret: " + testSecret + "\n" + // lines 2-4
	"  - name: crm\n    url: https://crm.example.com\n    secret: " + testSecret + "\n" // lines 5-7

func TestParseSources(t *testing.T) {
	t.Parallel()

	cfg, err := Parse([]byte(twoEndpoints+`sources:
  - name: orders
    url: postgres://orders@db/orders
    endpoints: [crm]
  - name: shipping
    url: ${SHIPPING_URL}
    max_conns: 16
`), "herald.yaml", env(map[string]string{"SHIPPING_URL": "postgres://s:pw@db/shipping", "DATABASE_URL": "postgres://ignored@db/x"}))
	require.NoError(t, err)
	require.Equal(t, []Source{
		{Name: "orders", URL: "postgres://orders@db/orders", MaxConns: DatabaseMaxConnsDefault, Endpoints: []string{"crm"}},
		{Name: "shipping", URL: "postgres://s:pw@db/shipping", MaxConns: 16},
	}, cfg.Sources)
	require.Empty(t, cfg.Database.URL, "DATABASE_URL does not apply when sources are set")
	require.Contains(t, strings.Join(cfg.Warnings(), "\n"), "DATABASE_URL is set but ignored")
	names := func(eps []Endpoint) (ns []string) {
		for _, e := range eps {
			ns = append(ns, e.Name)
		}
		return ns
	}
	require.Equal(t, []string{"crm"}, names(cfg.SourceEndpoints(cfg.Sources[0])))
	require.Equal(t, []string{"billing", "crm"}, names(cfg.SourceEndpoints(cfg.Sources[1])))
}

func TestSourcesErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		yaml string
		want []string // each a full line of the error
	}{
		{
			name: "BothDatabaseAndSources",
			yaml: twoEndpoints + "database:\n  max_conns: 8\nsources:\n  - name: a\n    url: postgres://a@db/a\n",
			want: []string{`herald.yaml:10: sources: database and sources cannot both be set: move database.url into a source, or remove sources`},
		},
		{
			name: "DuplicateName",
			yaml: twoEndpoints + "sources:\n  - name: a\n    url: postgres://a@db/a\n  - name: a\n    url: postgres://a@db/b\n",
			want: []string{`herald.yaml:11: sources[1].name: duplicate of sources[0].name (got "a")`},
		},
		{
			name: "BadName",
			yaml: twoEndpoints + "sources:\n  - name: Orders\n    url: postgres://a@db/a\n",
			want: []string{`herald.yaml:9: sources[0].name: must match ^[a-z0-9][a-z0-9_.-]{0,62}$ (got "Orders")`},
		},
		{
			name: "UnknownEndpoint",
			yaml: twoEndpoints + "sources:\n  - name: a\n    url: postgres://a@db/a\n    endpoints:\n      - crm\n      - biling\n",
			want: []string{`herald.yaml:13: sources[0].endpoints[1]: no endpoint of that name in endpoints (got "biling")`},
		},
		{
			name: "MissingURLAndSmallPool",
			yaml: twoEndpoints + "sources:\n  - name: a\n    max_conns: 2\n",
			want: []string{
				`herald.yaml:9: sources[0].url: required`,
				`herald.yaml:10: sources[0].max_conns: must be at least 4 (got "2")`,
			},
		},
		{
			name: "BadURLNeverPrinted",
			yaml: twoEndpoints + "sources:\n  - name: a\n    url: mysql://root:hunter2@db/a\n",
			want: []string{`herald.yaml:10: sources[0].url: must be a postgres:// or postgresql:// URL or a key=value connection string (value not shown)`},
		},
		{
			name: "EmptyLists",
			yaml: twoEndpoints + "sources:\n  - name: a\n    url: postgres://a@db/a\n    endpoints: []\n",
			want: []string{`herald.yaml:11: sources[0].endpoints: must name at least one endpoint, or be removed to deliver to all`},
		},
		{
			name: "NoSources",
			yaml: twoEndpoints + "sources: []\n",
			want: []string{`herald.yaml:8: sources: must list at least one source, or be removed to use database`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := parseErr(t, tt.yaml, nil)
			require.Equal(t, strings.Join(tt.want, "\n"), err.Error())
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestSourcesWarnAboutUnusedEndpoints(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(twoEndpoints+"sources:\n  - name: a\n    url: postgres://a@db/a\n    endpoints: [crm]\n"), "herald.yaml", env(nil))
	require.NoError(t, err)
	require.Contains(t, cfg.Warnings(), "herald.yaml:2: endpoints[0]: no source delivers to billing: add it to a source's endpoints")
	require.NotContains(t, strings.Join(cfg.Warnings(), "\n"), "crm: add it")
}

func TestValidateSourcesInGo(t *testing.T) {
	t.Parallel()
	cfg := Default()
	cfg.Sources = []Source{{Name: "a", URL: "postgres://a@db/a", MaxConns: 8}}
	require.NoError(t, cfg.Validate())
	cfg.Database.URL = "postgres://x@db/x"
	require.EqualError(t, cfg.Validate(), "sources: database and sources cannot both be set: move database.url into a source, or remove sources")
}
