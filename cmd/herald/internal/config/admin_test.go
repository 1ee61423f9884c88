package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseAdmin(t *testing.T) {
	t.Parallel()

	const readToken, writeToken = "r3ad-token-0123456789abcdef", "wr1te.token_0123456789/ABC+=="
	cfg, err := Parse([]byte(base+`admin:
  listen: ":8089"
  tokens:
    - name: dashboard
      token: ${READ_TOKEN}
    - name: oncall
      token: ${WRITE_TOKEN}
      access: write
`), "herald.yaml", env(map[string]string{"READ_TOKEN": readToken, "WRITE_TOKEN": writeToken}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8089", cfg.Admin.Addr(), "no host means loopback")
	require.Equal(t, []AdminToken{
		{Name: "dashboard", Token: Secret(readToken), Access: AdminAccessRead},
		{Name: "oncall", Token: Secret(writeToken), Access: AdminAccessWrite},
	}, cfg.Admin.Tokens)
	require.NotContains(t, fmt.Sprintf("%v %+v %#v", cfg.Admin, cfg.Admin, cfg), readToken)

	for listen, addr := range map[string]string{"0.0.0.0:8089": "0.0.0.0:8089", "[::1]:0": "[::1]:0", "": ""} {
		require.Equal(t, addr, Admin{Listen: listen}.Addr())
	}
	off, err := Parse([]byte(base), "herald.yaml", env(nil))
	require.NoError(t, err)
	require.Equal(t, Admin{}, off.Admin, "off by default")
}

func TestParseAdminErrors(t *testing.T) {
	t.Parallel()

	const tok = "0123456789abcdef"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "ListenWithoutPort",
			yaml: "admin:\n  listen: localhost\n  tokens: [{name: a, token: " + tok + "}]\n",
			want: []string{`herald.yaml:4: admin.listen: must be host:port, like ":8089" (127.0.0.1:8089) or "0.0.0.0:8089", or empty to turn the admin API off (got "localhost")`},
		},
		{
			name: "NoTokens",
			yaml: "admin:\n  listen: \":8089\"\n",
			want: []string{`herald.yaml:3: admin.tokens: at least one token is required when admin.listen is set`},
		},
		{
			name: "BadTokens",
			yaml: "admin:\n  listen: \":0\"\n  tokens:\n" +
				"    - {name: a, token: short, access: write}\n" +
				"    - {name: a, token: \"has spaces in it 0123456789\"}\n" +
				"    - {name: B, token: " + tok + ", access: admin}\n" +
				"    - {name: c, token: " + tok + "}\n" +
				"    - {token: " + tok + "x}\n",
			want: []string{
				`herald.yaml:6: admin.tokens[0].token: must be at least 16 characters (value not shown)`,
				`herald.yaml:7: admin.tokens[1].name: duplicate of admin.tokens[0].name (got "a")`,
				`herald.yaml:7: admin.tokens[1].token: must be letters, digits and -._~+/ with optional = padding (value not shown)`,
				`herald.yaml:8: admin.tokens[2].name: must match ^[a-z0-9][a-z0-9_.-]{0,62}$ (got "B")`,
				`herald.yaml:8: admin.tokens[2].access: must be read or write (got "admin")`,
				`herald.yaml:9: admin.tokens[3].token: duplicate of admin.tokens[2].token (value not shown)`,
				`herald.yaml:10: admin.tokens[4].name: required`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := parseErr(t, base+tt.yaml, nil)
			require.Equal(t, strings.Join(tt.want, "\n"), err.Error())
			require.NotContains(t, err.Error(), tok)
			require.NotContains(t, err.Error(), "short")
		})
	}
}

func TestAdminTokensWithoutListenWarn(t *testing.T) {
	t.Parallel()

	cfg, err := Parse([]byte(base+"admin:\n  tokens: [{name: a, token: 0123456789abcdef}]\n"), "herald.yaml", env(nil))
	require.NoError(t, err)
	require.Contains(t, cfg.Warnings(), "herald.yaml:4: admin.tokens: has no effect while admin.listen is empty (the admin API is off)")
}
