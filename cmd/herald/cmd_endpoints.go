package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/webhook"
)

const endpointsUsage = `herald endpoints add NAME --url URL --secret S [flags]
       herald endpoints update NAME [flags]        only the flags given change
       herald endpoints list [--json]
       herald endpoints show NAME [--json]
       herald endpoints disable NAME [--reason TEXT]
       herald endpoints enable NAME
       herald endpoints remove NAME

Flags of add and update:
  --url URL                  http(s) URL receiving the webhooks
  --secret S                 whsec_... signing secret; repeat during a rotation, newest first
  --secret-env VAR           like --secret, read from the environment variable VAR (keeps the
                             secret out of the shell history and the process list)
  --topic T                  topic pattern ('*' matches anything); repeatable
  --header NAME=VALUE        static header; repeatable
  --timeout D                time limit of one attempt (default delivery.timeout; 0 resets)
  --max-in-flight N          concurrent requests (default 64; 0 resets)
  --rate-limit F             requests per second (0: unlimited)
  --rate-burst N             burst above --rate-limit (0: max(1, ceil(rate-limit)))
  --ordered                  deliver the messages of one key in commit order
  --on-dead block|skip       ordered endpoints: when a message of a key dies, block or skip its later ones
  --permanent-status N       4xx status that is not retried; repeatable (default 400, 413, 422)
  --follow-redirects         follow 3xx responses
  --tls-ca-file, --tls-cert-file, --tls-key-file FILE, --tls-min-version 1.2|1.3
  --format F                 standard-webhooks (default), cloudevents-binary or cloudevents-structured
  --cloudevents-source S     CloudEvents source attribute, a URI-reference (default herald)
With update, a repeatable flag replaces the whole list (--secret replaces every secret);
--no-topics, --no-headers and --no-permanent-statuses empty a list, and a boolean flag
is turned off with --ordered=false.

Every command takes --source NAME, the source (database) to act on, required when the
configuration has several sources.

Secrets and header values are stored in outbox.endpoints in plain text and are never printed.`

func cmdEndpoints(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: endpoints add|list|show|update|disable|enable|remove\n\n%s", errUsage, endpointsUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("endpoints "+sub, flag.ContinueOnError)
	var ef *endpointFlags
	var reason *string
	var asJSON *bool
	switch sub {
	case "add", "update":
		ef = newEndpointFlags(fs, sub == "update")
	case "disable":
		reason = fs.String("reason", "", "why the endpoint is disabled")
	case "list", "show":
		asJSON = fs.Bool("json", false, "print as JSON (secrets and header values left out)")
	case "enable", "remove":
	case "help":
		fmt.Fprintln(g.stdout, endpointsUsage)
		return nil
	default:
		return fmt.Errorf("%w: unknown endpoints command %q", errUsage, sub)
	}
	sourceName := fs.String("source", "", "the source (database) to act on; required with several sources")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var name string
	switch {
	case sub == "list" && len(pos) == 0:
	case sub != "list" && len(pos) == 1:
		name = pos[0]
	case sub == "list":
		return fmt.Errorf("%w: endpoints list takes no arguments", errUsage)
	default:
		return fmt.Errorf("%w: endpoints %s needs exactly one endpoint NAME", errUsage, sub)
	}
	if ef != nil && ef.err != nil {
		return fmt.Errorf("%w: endpoints %s: %v", errUsage, sub, ef.err)
	}
	if sub == "add" && (ef.url == "" || len(ef.secrets) == 0) {
		return fmt.Errorf("%w: endpoints add needs --url and --secret (or --secret-env)", errUsage)
	}

	cfg, pool, err := openSourcePool(ctx, g, *sourceName)
	if err != nil {
		return err
	}
	defer pool.Close()

	switch sub {
	case "list":
		list, skipped, err := ops.ListEndpoints(ctx, pool)
		if err != nil {
			return err
		}
		for _, re := range skipped {
			fmt.Fprintf(g.stderr, "herald: %v (row left out; fix it with SQL)\n", re)
		}
		if *asJSON {
			views := make([]ops.EndpointView, len(list))
			for i, ep := range list {
				views[i] = ep.View()
			}
			return printJSON(g.stdout, views)
		}
		return printEndpointList(g.stdout, list)
	case "show":
		ep, err := ops.GetEndpoint(ctx, pool, name)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(g.stdout, ep.View())
		}
		return printEndpoint(g.stdout, cfg, ep)
	case "add":
		ep := ops.Endpoint{Endpoint: config.Endpoint{Name: name}, Source: ops.SourceCLI}
		ef.change().Apply(&ep)
		if err := checkEndpoint(g, cfg, ep); err != nil {
			return err
		}
		if err := ops.AddEndpoint(ctx, pool, ep); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "added endpoint %s\n", name)
	case "update":
		_, err := ops.UpdateEndpoint(ctx, pool, name, func(ep *ops.Endpoint) error {
			ef.change().Apply(ep)
			return checkEndpoint(g, cfg, *ep)
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "updated endpoint %s\n", name)
	case "disable":
		if err := ops.DisableEndpoint(ctx, pool, name, *reason); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "disabled endpoint %s: its messages wait until `herald endpoints enable %s`\n", name, name)
	case "enable":
		if err := ops.EnableEndpoint(ctx, pool, name); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "enabled endpoint %s\n", name)
	case "remove":
		if err := ops.RemoveEndpoint(ctx, pool, name); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "removed endpoint %s\n", name)
	}
	return nil
}

// parseInterspersed parses fs's flags wherever they are among args, so that
// both `add NAME --url U` and `add --url U NAME` work, and returns the
// positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// checkEndpoint validates ep as a relay with cfg would (ops.CheckEndpoint),
// printing a problem only cfg has as a warning.
func checkEndpoint(g *globals, cfg *config.Config, ep ops.Endpoint) error {
	warning, err := ops.CheckEndpoint(cfg, ep)
	if err != nil {
		return err
	}
	if warning != nil {
		fmt.Fprintf(g.stderr, "warning: %v\n", warning)
	}
	return nil
}

// endpointFlags are the flags of add and update.
type endpointFlags struct {
	fs                              *flag.FlagSet
	url                             string
	secrets                         []config.Secret
	topics                          []string
	headers                         map[string]config.Secret
	timeout                         time.Duration
	maxInFlight                     int
	rateLimit                       float64
	rateBurst                       int
	ordered, followRedirects        bool
	onDead                          string
	format, ceSource                string
	statuses                        []int
	tls                             config.EndpointTLS
	noTopics, noHeaders, noStatuses bool
	// err is a malformed --header or --secret-env, reported after parsing
	// and without the value, which the flag package would print.
	err error
}

func newEndpointFlags(fs *flag.FlagSet, update bool) *endpointFlags {
	f := &endpointFlags{fs: fs, headers: map[string]config.Secret{}}
	fs.StringVar(&f.url, "url", "", "")
	fs.Func("secret", "", func(s string) error {
		f.secrets = append(f.secrets, config.Secret(s))
		return nil
	})
	fs.Func("secret-env", "", func(name string) error {
		v, ok := os.LookupEnv(name)
		if !ok {
			f.err = cmp.Or(f.err, fmt.Errorf("--secret-env: environment variable %s is not set", name))
			return nil
		}
		f.secrets = append(f.secrets, config.Secret(v))
		return nil
	})
	fs.Func("topic", "", func(s string) error {
		f.topics = append(f.topics, s)
		return nil
	})
	fs.Func("header", "", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			// The flag package would quote the value, which may be a credential.
			f.err = cmp.Or(f.err, errors.New("--header must be NAME=VALUE (value not shown)"))
			return nil
		}
		f.headers[k] = config.Secret(v)
		return nil
	})
	fs.DurationVar(&f.timeout, "timeout", 0, "")
	fs.IntVar(&f.maxInFlight, "max-in-flight", 0, "")
	fs.Float64Var(&f.rateLimit, "rate-limit", 0, "")
	fs.IntVar(&f.rateBurst, "rate-burst", 0, "")
	fs.BoolVar(&f.ordered, "ordered", false, "")
	fs.StringVar(&f.onDead, "on-dead", "", "")
	fs.Func("permanent-status", "", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return errors.New("must be an HTTP status such as 422")
		}
		f.statuses = append(f.statuses, n)
		return nil
	})
	fs.BoolVar(&f.followRedirects, "follow-redirects", false, "")
	fs.StringVar(&f.tls.CAFile, "tls-ca-file", "", "")
	fs.StringVar(&f.tls.CertFile, "tls-cert-file", "", "")
	fs.StringVar(&f.tls.KeyFile, "tls-key-file", "", "")
	fs.StringVar(&f.tls.MinVersion, "tls-min-version", "", "")
	fs.StringVar(&f.format, "format", "", "")
	fs.StringVar(&f.ceSource, "cloudevents-source", "", "")
	if update {
		fs.BoolVar(&f.noTopics, "no-topics", false, "")
		fs.BoolVar(&f.noHeaders, "no-headers", false, "")
		fs.BoolVar(&f.noStatuses, "no-permanent-statuses", false, "")
	}
	return f
}

// change returns the settings of the flags that were given. Relative TLS
// file paths are made absolute: the relays may run elsewhere.
func (f *endpointFlags) change() ops.EndpointChange {
	abs := func(p string) *string {
		if p == "" {
			return &p
		}
		if a, err := filepath.Abs(p); err == nil {
			return &a
		}
		return &p
	}
	var c ops.EndpointChange
	f.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "url":
			c.URL = &f.url
		case "secret", "secret-env":
			c.Secrets = &f.secrets
		case "topic":
			c.Topics = &f.topics
		case "header":
			c.Headers = &f.headers
		case "timeout":
			ms := f.timeout.Milliseconds()
			c.TimeoutMS = &ms
		case "max-in-flight":
			c.MaxInFlight = &f.maxInFlight
		case "rate-limit":
			c.RateLimit = &f.rateLimit
		case "rate-burst":
			c.RateBurst = &f.rateBurst
		case "ordered":
			c.Ordered = &f.ordered
		case "on-dead":
			c.OnDead = &f.onDead
		case "permanent-status":
			c.PermanentStatuses = &f.statuses
		case "follow-redirects":
			c.FollowRedirects = &f.followRedirects
		case "tls-ca-file":
			c.TLSCAFile = abs(f.tls.CAFile)
		case "tls-cert-file":
			c.TLSCertFile = abs(f.tls.CertFile)
		case "tls-key-file":
			c.TLSKeyFile = abs(f.tls.KeyFile)
		case "tls-min-version":
			c.TLSMinVersion = &f.tls.MinVersion
		case "format":
			c.Format = &f.format
		case "cloudevents-source":
			c.CloudEventsSource = &f.ceSource
		case "no-topics":
			if f.noTopics {
				c.Topics = &[]string{}
			}
		case "no-headers":
			if f.noHeaders {
				c.Headers = &map[string]config.Secret{}
			}
		case "no-permanent-statuses":
			if f.noStatuses {
				c.PermanentStatuses = &[]int{}
			}
		}
	})
	return c
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func endpointState(ep ops.Endpoint, withTime bool) string {
	if !ep.Disabled {
		return "enabled"
	}
	s := "disabled"
	if withTime {
		s += " since " + ep.DisabledAt.UTC().Format(time.RFC3339)
	}
	if ep.DisabledReason != "" {
		s += " (" + ep.DisabledReason + ")"
	}
	return s
}

// printEndpointList prints one line per endpoint; secrets appear only as a
// count.
func printEndpointList(w io.Writer, list []ops.Endpoint) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "(no endpoints in outbox.endpoints)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tURL\tTOPICS\tSECRETS\tSOURCE\tSTATE\tUPDATED")
	for _, ep := range list {
		topics := strings.Join(ep.Topics, ",")
		if topics == "" {
			topics = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", ep.Name, webhook.RedactURL(ep.URL), topics, len(ep.SigningSecrets()),
			ep.Source, endpointState(ep, false), ep.UpdatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// printEndpoint prints every setting of ep; secrets and header values
// appear only as counts and names.
func printEndpoint(w io.Writer, cfg *config.Config, ep ops.Endpoint) error {
	d := ep.WithDefaults(cfg.Delivery)
	orDefault := func(set bool, v, def string) string {
		if set {
			return v
		}
		return v + " (" + def + ")"
	}
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-20s%s\n", k+":", v) }
	line("name", ep.Name)
	line("url", webhook.RedactURL(ep.URL))
	line("state", endpointState(ep, true))
	line("source", string(ep.Source))
	line("secrets", plural(len(ep.SigningSecrets()), "secret", "secrets")+" (whsec_…, newest first; not shown)")
	line("topics", cmp.Or(strings.Join(ep.Topics, ", "), "none: only messages that name it"))
	if len(ep.Headers) == 0 {
		line("headers", "none")
	} else {
		names := make([]string, 0, len(ep.Headers))
		for k := range ep.Headers {
			names = append(names, k)
		}
		slices.Sort(names)
		line("headers", strings.Join(names, ", ")+" (values not shown)")
	}
	line("timeout", orDefault(ep.Timeout != 0, d.Timeout.String(), "delivery.timeout"))
	line("max_in_flight", orDefault(ep.MaxInFlight != 0, strconv.Itoa(d.MaxInFlight), "default"))
	if ep.RateLimit == 0 {
		line("rate_limit", "unlimited")
	} else {
		line("rate_limit", fmt.Sprintf("%g/s, burst %d", ep.RateLimit, ep.Burst()))
	}
	line("ordered", strconv.FormatBool(ep.Ordered))
	line("on_dead", d.OnDead)
	statuses := make([]string, len(d.PermanentStatuses))
	for i, s := range d.PermanentStatuses {
		statuses[i] = strconv.Itoa(s)
	}
	line("permanent_statuses", orDefault(ep.PermanentStatuses != nil, cmp.Or(strings.Join(statuses, ", "), "none"), "default"))
	line("follow_redirects", strconv.FormatBool(ep.FollowRedirects))
	line("tls.ca_file", cmp.Or(ep.TLS.CAFile, "- (system roots)"))
	line("tls.cert_file", cmp.Or(ep.TLS.CertFile, "-"))
	line("tls.key_file", cmp.Or(ep.TLS.KeyFile, "-"))
	line("tls.min_version", cmp.Or(ep.TLS.MinVersion, "1.2"))
	line("format", cmp.Or(ep.Format, webhook.FormatDefault))
	if ep.Format == webhook.FormatCloudEventsBinary || ep.Format == webhook.FormatCloudEventsStructured {
		line("cloudevents_source", cmp.Or(ep.CloudEventsSource, webhook.CloudEventsSourceDefault))
	}
	line("created", ep.CreatedAt.UTC().Format(time.RFC3339))
	line("updated", ep.UpdatedAt.UTC().Format(time.RFC3339))
	_, err := io.WriteString(w, b.String())
	return err
}
