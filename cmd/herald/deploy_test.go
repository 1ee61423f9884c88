package main

// The examples under deploy/ are checked against the binary they deploy:
// the dashboard's and the alert rules' queries name only metrics herald
// exports, the rules have the shape Prometheus loads, and the Kubernetes
// example probes the routes herald serves and gives it the variables its
// configuration reads. promtool, when it is on PATH, checks the rules too;
// without it, the PromQL is checked by promqlMetrics below, not by
// Prometheus's parser (github.com/prometheus/prometheus would bring some
// hundred modules into go.mod for one test).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/goccy/go-yaml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/internal/heraldtest"
)

const deployDir = "../../deploy"

// describingRegisterer registers collectors with a real registry and
// records the name of every metric they describe, including the vectors
// that have no series yet (a registry's Gather would miss those).
type describingRegisterer struct {
	*prometheus.Registry
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describingRegisterer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return d.Registry.Register(c)
}

func (d *describingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := d.Register(c); err != nil {
			panic(err)
		}
	}
}

// exportedMetrics returns the names of the metrics a running herald
// exports: those herald run registers, and those of a source started as
// herald run starts it.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	url := heraldtest.URL(t)
	reg := &describingRegisterer{Registry: prometheus.NewRegistry(), names: map[string]bool{}}
	families, err := newRegistry().Gather()
	require.NoError(t, err)
	for _, f := range families {
		reg.names[f.GetName()] = true
	}
	cfg := sourceConfig(url, withMetrics)
	rs, err := startSource(context.Background(), &globals{configPath: "herald.yaml"}, cfg, sourcesOf(cfg)[0],
		heraldtest.PoolFor(t, url), reg, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, rs.Stop(10*time.Second)) })
	for _, name := range []string{"herald_delivered_total", "herald_pending_messages", "herald_ready", "process_resident_memory_bytes"} {
		require.True(t, reg.names[name], "%s is among the metrics found: the collection works", name)
	}
	return reg.names
}

// unknownMetrics returns the names in exprs that herald does not export;
// a histogram's _bucket, _sum and _count series count as exported.
func unknownMetrics(t *testing.T, exported map[string]bool, exprs map[string]string) []string {
	t.Helper()
	var unknown []string
	for where, expr := range exprs {
		names, err := promqlMetrics(expr)
		require.NoError(t, err, "%s: %s", where, expr)
		require.NotEmpty(t, names, "%s: %s selects no metric", where, expr)
		for _, n := range names {
			base := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if s, ok := strings.CutSuffix(n, suffix); ok && exported[s] {
					base = s
				}
			}
			if !exported[base] {
				unknown = append(unknown, fmt.Sprintf("%s: %s", where, n))
			}
		}
	}
	slices.Sort(unknown)
	return unknown
}

func TestDashboardAndAlertsUseOnlyExportedMetrics(t *testing.T) {
	t.Parallel()
	exported := exportedMetrics(t)
	exprs := dashboardExprs(t)
	maps.Copy(exprs, ruleExprs(t, loadRules(t)))
	require.Empty(t, unknownMetrics(t, exported, exprs))

	// The check is not vacuous: a name herald does not export is caught.
	require.Equal(t, []string{"x: herald_delivered", "y: herald_ready_total"}, unknownMetrics(t, exported,
		map[string]string{"x": `sum(rate(herald_delivered[5m]))`, "y": `herald_ready_total == 0 and herald_ready`}))
}

// dashboardExprs returns every query of deploy/grafana/herald.json, its
// panels' and its variables', by where it stands.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir, "grafana", "herald.json"))
	require.NoError(t, err)
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(data, &dash))
	require.NotEmpty(t, dash.UID)
	exprs := map[string]string{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for i, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q target %d", p.Title, i)
			exprs[fmt.Sprintf("panel %q target %d", p.Title, i)] = tg.Expr
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		m := labelValues.FindStringSubmatch(fmt.Sprint(q["query"]))
		require.NotNil(t, m, "variable %s: expected label_values(<selector>, <label>), got %v", v.Name, v.Query)
		exprs["variable "+v.Name] = m[1]
	}
	require.Greater(t, len(exprs), 10)
	return exprs
}

// rules is the shape of a Prometheus rule file, as deploy/prometheus/alerts.yml
// uses it.
type rules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) rules {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "alerts.yml"))
	require.NoError(t, err)
	var r rules
	require.NoError(t, yaml.UnmarshalWithOptions(data, &r, yaml.Strict()))
	return r
}

func ruleExprs(t *testing.T, r rules) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			exprs["alert "+rule.Alert] = rule.Expr
		}
	}
	return exprs
}

// promDuration is a Prometheus duration, as a rule's "for" takes it.
var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// The alert rules load in Prometheus: checked by promtool when it is
// installed, and always for their shape, durations and expressions.
func TestAlertRulesParse(t *testing.T) {
	t.Parallel()
	path := filepath.Join(deployDir, "prometheus", "alerts.yml")
	if promtool, err := exec.LookPath("promtool"); err == nil {
		out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
		require.NoError(t, err, "promtool check rules:\n%s", out)
	} else {
		t.Log("promtool is not on PATH: the rules are checked by this test alone")
	}
	r := loadRules(t)
	require.Len(t, r.Groups, 1)
	alerts := map[string]bool{}
	for _, g := range r.Groups {
		require.NotEmpty(t, g.Name)
		for _, rule := range g.Rules {
			require.Regexp(t, `^[A-Z][A-Za-z]+$`, rule.Alert)
			require.False(t, alerts[rule.Alert], "alert %s twice", rule.Alert)
			alerts[rule.Alert] = true
			require.Regexp(t, promDuration, rule.For, "alert %s: for", rule.Alert)
			_, err := promqlMetrics(rule.Expr)
			require.NoError(t, err, "alert %s: expr", rule.Alert)
			require.Contains(t, []string{"warning", "critical"}, rule.Labels["severity"], "alert %s: severity", rule.Alert)
			for _, a := range []string{"summary", "description"} {
				require.NotEmpty(t, rule.Annotations[a], "alert %s: annotation %s", rule.Alert, a)
				require.Equal(t, strings.Count(rule.Annotations[a], "{{"), strings.Count(rule.Annotations[a], "}}"),
					"alert %s: annotation %s: unbalanced template", rule.Alert, a)
			}
		}
	}
	// What the rules must watch (issue 13).
	for _, want := range []string{"HeraldOldestPendingMessageTooOld", "HeraldMessagesDying", "HeraldEndpointBreakerOpen",
		"HeraldClaimErrors", "HeraldQueueScrapeErrors", "HeraldNotReady"} {
		require.True(t, alerts[want], "no alert %s", want)
	}
}

// k8sObject is what the test reads of a Kubernetes manifest.
type k8sObject struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Metadata   map[string]any `yaml:"metadata"`
	Resources  []string       `yaml:"resources"`  // Kustomization
	Data       map[string]any `yaml:"data"`       // ConfigMap
	StringData map[string]any `yaml:"stringData"` // Secret
	Spec       struct {
		Replicas *int        `yaml:"replicas"`
		Template podTemplate `yaml:"template"` // Deployment, Job
		Ports    []k8sPort   `yaml:"ports"`    // Service
	} `yaml:"spec"`
}

type podTemplate struct {
	Spec struct {
		Containers []struct {
			Name  string   `yaml:"name"`
			Image string   `yaml:"image"`
			Args  []string `yaml:"args"`
			Env   []struct {
				Name      string `yaml:"name"`
				ValueFrom struct {
					SecretKeyRef struct {
						Name string `yaml:"name"`
						Key  string `yaml:"key"`
					} `yaml:"secretKeyRef"`
				} `yaml:"valueFrom"`
			} `yaml:"env"`
			Ports          []k8sPort `yaml:"ports"`
			LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
			ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
			Resources      struct {
				Requests map[string]string `yaml:"requests"`
				Limits   map[string]string `yaml:"limits"`
			} `yaml:"resources"`
			VolumeMounts []struct {
				MountPath string `yaml:"mountPath"`
			} `yaml:"volumeMounts"`
		} `yaml:"containers"`
	} `yaml:"spec"`
}

type k8sPort struct {
	Name          string `yaml:"name"`
	Port          int    `yaml:"port"`
	ContainerPort int    `yaml:"containerPort"`
	TargetPort    any    `yaml:"targetPort"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// loadManifests parses every YAML document under deploy/kubernetes, by file.
func loadManifests(t *testing.T) map[string][]k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "kubernetes", "*.yaml"))
	require.NoError(t, err)
	out := map[string][]k8sObject{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			require.NotEmpty(t, o.Kind, "%s: a document without kind", f)
			require.NotEmpty(t, o.APIVersion, "%s: %s without apiVersion", f, o.Kind)
			out[filepath.Base(f)] = append(out[filepath.Base(f)], o)
		}
	}
	return out
}

func TestKubernetesExampleMatchesHerald(t *testing.T) {
	t.Parallel()
	manifests := loadManifests(t)
	byKind := map[string]k8sObject{}
	for _, objs := range manifests {
		for _, o := range objs {
			require.NotContains(t, byKind, o.Kind, "one %s expected", o.Kind)
			byKind[o.Kind] = o
		}
	}
	require.ElementsMatch(t, []string{"Kustomization", "Secret", "ConfigMap", "Job", "Deployment", "Service", "PodDisruptionBudget"},
		slices.Collect(maps.Keys(byKind)))
	// The kustomization applies every other file.
	others := slices.DeleteFunc(slices.Collect(maps.Keys(manifests)), func(f string) bool { return f == "kustomization.yaml" })
	require.ElementsMatch(t, others, byKind["Kustomization"].Resources)

	secret := map[string]string{}
	for k, v := range byKind["Secret"].StringData {
		secret[k] = fmt.Sprint(v)
	}
	herald := byKind["ConfigMap"].Data["herald.yaml"]
	require.NotNil(t, herald, "the ConfigMap holds herald.yaml")

	dep := byKind["Deployment"]
	require.NotNil(t, dep.Spec.Replicas)
	require.GreaterOrEqual(t, *dep.Spec.Replicas, 2)
	require.Len(t, dep.Spec.Template.Spec.Containers, 1)
	c := dep.Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"--config", "/etc/herald/herald.yaml", "run"}, c.Args)
	require.Equal(t, "/etc/herald", c.VolumeMounts[0].MountPath)
	for _, r := range []map[string]string{c.Resources.Requests, c.Resources.Limits} {
		require.NotEmpty(t, r["memory"], "memory requests and limits")
	}

	// Every variable the Deployment sets comes from the Secret, and is one
	// herald's configuration reads: DATABASE_URL or a ${VAR} of herald.yaml.
	env := map[string]string{}
	for _, e := range c.Env {
		ref := e.ValueFrom.SecretKeyRef
		require.Equal(t, byKind["Secret"].Metadata["name"], ref.Name, "env %s", e.Name)
		require.Contains(t, secret, ref.Key, "env %s: no key %s in the Secret", e.Name, ref.Key)
		env[e.Name] = secret[ref.Key]
	}
	read := map[string]bool{}
	cfg, err := config.ParseLookupEnv([]byte(fmt.Sprint(herald)), "herald.yaml", func(name string) (string, bool) {
		read[name] = true
		v, ok := env[name]
		return v, ok
	})
	require.NoError(t, err, "the ConfigMap's herald.yaml with the Deployment's environment")
	for name := range env {
		require.True(t, read[name], "env %s is set but herald does not read it", name)
	}
	require.Equal(t, secret["DATABASE_URL"], cfg.Database.URL.Value(), "database.url comes from the Secret")
	require.NotEmpty(t, cfg.Endpoints)

	// The probes ask for routes herald serves, on the port metrics.listen
	// opens, which the Service exposes.
	require.NotEmpty(t, cfg.Metrics.Listen)
	_, listenPort, _ := strings.Cut(cfg.Metrics.Listen, ":")
	require.Len(t, c.Ports, 1)
	require.Equal(t, listenPort, fmt.Sprint(c.Ports[0].ContainerPort))
	require.NotNil(t, c.LivenessProbe)
	require.NotNil(t, c.ReadinessProbe)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	srv := httptest.NewServer(newMetricsMux(newRegistry(), nil))
	t.Cleanup(srv.Close)
	for _, p := range []*k8sProbe{c.LivenessProbe, c.ReadinessProbe} {
		require.Equal(t, c.Ports[0].Name, p.HTTPGet.Port, "probe %s: port", p.HTTPGet.Path)
		resp, err := http.Get(srv.URL + p.HTTPGet.Path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "herald serves %s", p.HTTPGet.Path)
	}
	svc := byKind["Service"]
	require.Len(t, svc.Spec.Ports, 1)
	require.Equal(t, c.Ports[0].Name, svc.Spec.Ports[0].TargetPort)
	require.Equal(t, dep.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort, svc.Spec.Ports[0].Port)

	// The Job migrates with the same database URL and image.
	job := byKind["Job"].Spec.Template.Spec.Containers
	require.Len(t, job, 1)
	require.Equal(t, []string{"migrate"}, job[0].Args)
	require.Equal(t, c.Image, job[0].Image)
	require.Len(t, job[0].Env, 1)
	require.Equal(t, config.DatabaseURLEnv, job[0].Env[0].Name)
	require.Equal(t, "DATABASE_URL", job[0].Env[0].ValueFrom.SecretKeyRef.Key)
}

// promqlFunctions are the PromQL functions and aggregations the examples
// may call; a name not here followed by "(" is reported (a typo, or a
// Grafana macro in the wrong place).
var promqlFunctions = map[string]bool{
	"abs": true, "absent": true, "absent_over_time": true, "avg_over_time": true, "ceil": true, "changes": true,
	"clamp": true, "clamp_max": true, "clamp_min": true, "count_over_time": true, "delta": true, "deriv": true,
	"floor": true, "histogram_quantile": true, "idelta": true, "increase": true, "irate": true, "label_replace": true,
	"last_over_time": true, "max_over_time": true, "min_over_time": true, "predict_linear": true, "rate": true,
	"resets": true, "round": true, "scalar": true, "sum_over_time": true, "time": true, "timestamp": true, "vector": true,
}

// promqlAggregations may take "by (...)" or "without (...)" before their
// argument.
var promqlAggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true, "group": true,
}

// promqlKeywords are words of PromQL that are not metric names; those that
// take a label list in parentheses are marked true.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": false, "or": false, "unless": false, "bool": false, "offset": false,
}

// promqlMetrics returns the metric names expr selects, in order. It reads
// PromQL's lexical structure (strings, {matchers}, [ranges], label lists,
// calls) and fails on unbalanced brackets and unknown functions; it is not
// a full parser.
func promqlMetrics(expr string) ([]string, error) {
	var names []string
	depth := 0
	rs := []rune(expr)
	skipTo := func(i int, open, close rune) (int, error) {
		for j, n := i+1, 1; j < len(rs); j++ {
			switch rs[j] {
			case '"', '\'', '`':
				end := slices.Index(rs[j+1:], rs[j])
				if end < 0 {
					return 0, fmt.Errorf("unterminated string at %d", j)
				}
				j += end + 1
			case open:
				n++
			case close:
				if n--; n == 0 {
					return j, nil
				}
			}
		}
		return 0, fmt.Errorf("%c at %d is not closed", open, i)
	}
	isIdent := func(r rune, first bool) bool {
		return r == '_' || r == ':' || unicode.IsLetter(r) || (!first && unicode.IsDigit(r))
	}
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '{':
			j, err := skipTo(i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = j
		case r == '[':
			j, err := skipTo(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case r == '"' || r == '\'' || r == '`':
			end := slices.Index(rs[i+1:], r)
			if end < 0 {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			i += end + 1
		case r == '(':
			depth++
		case r == ')':
			if depth--; depth < 0 {
				return nil, fmt.Errorf(") at %d closes nothing", i)
			}
		case r == '}' || r == ']':
			return nil, fmt.Errorf("%c at %d closes nothing", r, i)
		case unicode.IsDigit(r) || r == '.' || r == '$':
			for i+1 < len(rs) && (isIdent(rs[i+1], false) || rs[i+1] == '.') {
				i++
			}
		case isIdent(r, true):
			j := i
			for j+1 < len(rs) && isIdent(rs[j+1], false) {
				j++
			}
			word := string(rs[i : j+1])
			i = j
			next := j + 1
			for next < len(rs) && rs[next] == ' ' {
				next++
			}
			call := next < len(rs) && rs[next] == '('
			takesList, keyword := promqlKeywords[word]
			switch {
			case keyword && takesList && call:
				k, err := skipTo(next, '(', ')')
				if err != nil {
					return nil, err
				}
				i = k
			case keyword:
			case promqlAggregations[word]:
			case call && !promqlFunctions[word]:
				return nil, fmt.Errorf("unknown function %s", word)
			case call:
			default:
				names = append(names, word)
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%d ( not closed", depth)
	}
	return names, nil
}

func TestPromqlMetrics(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`sum by (endpoint) (rate(herald_delivered_total{job=~"$job", endpoint!="a{b"}[$__rate_interval]))`:         {"herald_delivered_total"},
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) > 0.5 or max without (instance, pod) (y) == 1`: {"x_bucket", "y"},
		`rate(a[5m] offset 1h) / ignoring (op) group_left (endpoint) b and on (source) c unless bool d`:            {"a", "b", "c", "d"},
		`herald_ready == 0`: {"herald_ready"},
	} {
		got, err := promqlMetrics(expr)
		require.NoError(t, err, expr)
		require.Equal(t, want, got, expr)
	}
	for expr, want := range map[string]string{
		`sum(rate(x[5m])`:       "1 ( not closed",
		`rates(x[5m])`:          "unknown function rates",
		`x{job="a"`:             "{ at 1 is not closed",
		`max(x))`:               ") at 6 closes nothing",
		`x{job="a}`:             "unterminated string",
		`sum by (a (rate(x[1m]`: "( at 7 is not closed",
	} {
		_, err := promqlMetrics(expr)
		require.ErrorContains(t, err, want, expr)
	}
}
