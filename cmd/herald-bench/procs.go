package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herald-relay/herald/internal/pgcluster"
	"github.com/herald-relay/herald/relay"
)

// childEnv names the role a re-executed herald-bench plays (receiver or
// relay); the test binary honours it too, so the test runs the real pipeline.
const childEnv = "HERALD_BENCH_CHILD"

// childMain runs a child role and returns the process exit code.
func childMain(role string, args []string) int {
	var err error
	switch role {
	case "receiver":
		err = receiverMain(args)
	case "relay":
		err = relayChildMain(args)
	default:
		err = fmt.Errorf("unknown child role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-bench", role+":", err)
		return 1
	}
	return 0
}

// recvTarget is a receiver the relays post to.
type recvTarget struct {
	name string // "herald-bench receiver" or "peers receiver"
	base string // http://127.0.0.1:port
	pid  int
	cmd  *exec.Cmd
}

func (r *recvTarget) hookURL() string { return r.base + "/hook" }

func (r *recvTarget) stats() (recvStats, error) {
	var s recvStats
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(r.base + "/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func (r *recvTarget) reset() error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post(r.base+"/reset", "text/plain", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("receiver reset: %s", resp.Status)
	}
	return nil
}

// times returns when each id with prefix first arrived (last: last arrived),
// in Unix ns.
func (r *recvTarget) times(prefix string, last bool) (map[string]int64, error) {
	c := http.Client{Timeout: 30 * time.Second}
	q := url.Values{"prefix": {prefix}}
	if last {
		q.Set("last", "1")
	}
	resp, err := c.Get(r.base + "/times?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]int64{}
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

func (r *recvTarget) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = r.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = r.cmd.Process.Kill()
		}
	}
}

// startReceiver starts herald-bench's own receiver as a child process.
func (b *bench) startReceiver(ctx context.Context) (*recvTarget, error) {
	cmd := exec.Command(b.self, "-addr", "127.0.0.1:0", "-ttl", "2h")
	cmd.Env = append(os.Environ(), childEnv+"=receiver")
	cmd.Stderr = b.logFile("receiver.log")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		addr, ok := strings.CutPrefix(strings.TrimSpace(s), "LISTEN ")
		if !ok {
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("receiver did not start (said %q; see %s)", s, b.logPath("receiver.log"))
		}
		return &recvTarget{name: "herald-bench receiver", base: "http://" + addr, pid: cmd.Process.Pid, cmd: cmd}, nil
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		return nil, errors.New("receiver did not start within 15s")
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return nil, ctx.Err()
	}
}

// relayProc is one running relay: the herald binary or the inproc child.
type relayProc struct {
	cmd        *exec.Cmd
	pid        int
	metricsURL string
	log        string
	exited     chan struct{}
	exitErr    error
}

// benchSecret is a fixed Standard Webhooks secret (32 bytes, base64).
const benchSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// relayOpts are what a drain changes in a relay's defaults.
type relayOpts struct {
	gomaxprocs int // GOMAXPROCS of the process; 0: Go's default
	rateLimit  int // the endpoint's rate_limit; 0: none
	// slowEndpoints, if positive, replaces the one endpoint on "*" with
	// this many, endpoint i on topic slowTopic(i) and the receiver's slow
	// hook answering after slowDelay.
	slowEndpoints int
	slowDelay     time.Duration
	// historyAttempts and historyMessages set history.attempts and
	// history.messages; "": herald's default.
	historyAttempts string
	historyMessages bool
	// inTable: the slowEndpoints are rows of outbox.endpoints already (the
	// endpoints phase), not entries of the relay's file (binary mode).
	inTable bool
	// dsn, if set, is the database the relay uses instead of the bench's.
	dsn string
	// lease, if set, is relay.lease, with every attempt bounded by
	// delivery.timeout = lease - relay.LeaseMargin (the test's short kill
	// phase).
	lease time.Duration
}

// slowTopic is the topic of the slow phase's endpoint i.
func slowTopic(i int) string { return fmt.Sprintf("slow.%03d", i) }

// slowHookURL is where the slow phase's endpoints post: the receiver's
// slow hook, which answers after delay. ep only tells the endpoints apart
// in the receiver's access pattern (one connection pool each in the relay).
func slowHookURL(hook string, delay time.Duration, ep int) string {
	return fmt.Sprintf("%s/slow?ms=%d&ep=%d", hook, delay.Milliseconds(), ep)
}

// startRelay starts relay number idx posting to hook.
func (b *bench) startRelay(idx int, hook string, o relayOpts) (*relayProc, error) {
	port, err := pgcluster.FreePort()
	if err != nil {
		return nil, err
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(port)
	dsn := cmp.Or(o.dsn, b.dsn)
	b.relayStarts++
	logName := fmt.Sprintf("relay-%03d-%d.log", b.relayStarts, idx)
	var cmd *exec.Cmd
	profile := ""
	if b.opt.cpuprofile != "" && idx == 0 {
		profile = fmt.Sprintf("%s.%03d", b.opt.cpuprofile, b.relayStarts)
	}
	switch b.mode {
	case "binary":
		cfgPath := filepath.Join(b.tmp, fmt.Sprintf("herald-%d.yaml", idx))
		eps := fmt.Sprintf(`  - name: bench
    url: %q
    secret: %q
    topics: ["*"]
    rate_limit: %d
`, hook, benchSecret, o.rateLimit)
		if o.inTable {
			eps = "  []\n"
		} else if o.slowEndpoints > 0 {
			var sb strings.Builder
			for i := range o.slowEndpoints {
				fmt.Fprintf(&sb, "  - name: slow-%03d\n    url: %q\n    secret: %q\n    topics: [%q]\n",
					i, slowHookURL(hook, o.slowDelay, i), benchSecret, slowTopic(i))
			}
			eps = sb.String()
		}
		leaseConf := ""
		if o.lease > 0 {
			leaseConf = fmt.Sprintf("  timeout: %s\nrelay:\n  lease: %s\n", o.lease-relay.LeaseMargin, o.lease)
		}
		yaml := fmt.Sprintf(`# generated by herald-bench
database:
  url: %q
log:
  level: warn
delivery:
  allow_private_networks: true
%sendpoints:
%smetrics:
  listen: %q
`, dsn, leaseConf, eps, metricsAddr)
		if o.historyAttempts != "" {
			yaml += fmt.Sprintf("history:\n  attempts: %s\n  messages: %t\n", o.historyAttempts, o.historyMessages)
		}
		if b.opt.tracing {
			sink, err := b.startTraceSink()
			if err != nil {
				return nil, err
			}
			yaml += fmt.Sprintf("tracing:\n  exporter: otlp-http\n  endpoint: %q\n  sample_ratio: 1\n", sink)
		}
		if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
			return nil, err
		}
		args := []string{"--config", cfgPath, "run"}
		if profile != "" && b.heraldProfiles {
			args = append(args, "--cpuprofile", profile)
		}
		if b.opt.memprofile != "" && idx == 0 {
			args = append(args, "--memprofile", fmt.Sprintf("%s.%03d", b.opt.memprofile, b.relayStarts))
		}
		cmd = exec.Command(b.heraldBin, args...)
	default:
		args := []string{"-dsn", dsn, "-url", hook, "-secret", benchSecret, "-metrics", metricsAddr, "-rate-limit", strconv.Itoa(o.rateLimit),
			"-slow-endpoints", strconv.Itoa(o.slowEndpoints), "-slow-delay", o.slowDelay.String(), "-lease", o.lease.String(),
			"-history-attempts", o.historyAttempts, "-history-messages=" + strconv.FormatBool(o.historyMessages)}
		if profile != "" {
			args = append(args, "-cpuprofile", profile)
		}
		cmd = exec.Command(b.self, args...)
		cmd.Env = append(os.Environ(), childEnv+"=relay")
	}
	if o.gomaxprocs > 0 {
		cmd.Env = append(cmd.Environ(), "GOMAXPROCS="+strconv.Itoa(o.gomaxprocs))
	}
	cmd.Stderr = b.logFile(logName)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &relayProc{cmd: cmd, pid: cmd.Process.Pid, metricsURL: "http://" + metricsAddr + "/metrics",
		log: b.logPath(logName), exited: make(chan struct{})}
	go func() { p.exitErr = cmd.Wait(); close(p.exited) }()
	if profile != "" {
		b.profiles = append(b.profiles, profile)
	}
	return p, nil
}

// startTraceSink starts, once, an OTLP/HTTP collector that reads and
// discards the spans it is sent, and returns its traces URL: -tracing
// measures what tracing costs the relay, not a collector.
func (b *bench) startTraceSink() (string, error) {
	if b.traceSink != "" {
		return b.traceSink, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	b.closers = append(b.closers, srv)
	b.traceSink = "http://" + ln.Addr().String() + "/v1/traces"
	return b.traceSink, nil
}

// waitReady waits until the relay serves metrics.
func (p *relayProc) waitReady(timeout time.Duration) error {
	c := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("relay exited early (%v); log: %s\n%s", p.exitErr, p.log, tail(p.log, 2000))
		default:
		}
		if resp, err := c.Get(p.metricsURL); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("relay metrics not up within %s; log: %s", timeout, p.log)
}

func (p *relayProc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("relay pid %d exited (%v); log %s:\n%s", p.pid, p.exitErr, p.log, tail(p.log, 2000))
	default:
		return nil
	}
}

// stop sends SIGTERM and waits for a graceful exit (SIGKILL after 40s).
func (p *relayProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("relay pid %d ignored SIGTERM for 40s; killed", p.pid)
	}
	if p.exitErr != nil {
		return fmt.Errorf("relay pid %d: %v; log %s:\n%s", p.pid, p.exitErr, p.log, tail(p.log, 2000))
	}
	return nil
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (b *bench) logPath(name string) string { return filepath.Join(b.tmp, name) }

func (b *bench) logFile(name string) *os.File {
	f, err := os.Create(b.logPath(name))
	if err != nil {
		return nil
	}
	b.closers = append(b.closers, f)
	return f
}
