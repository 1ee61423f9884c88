// Command herald relays a PostgreSQL transactional outbox to webhook
// endpoints. Run `herald help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.opentelemetry.io/otel/trace"

	"github.com/herald-relay/herald/webhook"
)

const usage = `herald relays a PostgreSQL transactional outbox to webhook endpoints.

Usage:
  herald <command> [flags]        (global flags go anywhere)

Commands:
  run                 deliver outbox messages until SIGINT/SIGTERM; SIGHUP reloads the configuration
  migrate [up]        apply pending schema migrations (safe to run concurrently; no-op when up to date)
                      to every source, or to --source NAME
  migrate status      print the schema version, one line per source
  migrate print       print the migrations' SQL, for teams on other migration tools
  migrate down --to N roll the schema back to version N
  dead list           list dead messages (--id, --endpoint, --reason, --limit)
  dead replay         put dead messages back for delivery (--id, --endpoint, --reason or --all; --limit)
  dead purge          delete dead messages older than --older-than (--id, --endpoint, --reason)
                      (dead takes --dry-run, to count what it would act on, and --json)
                      (dead and endpoints take --source NAME when sources: lists several databases)
  endpoints ...       manage endpoints in outbox.endpoints: add, list, show, update, disable, enable, remove
  admin serve         serve the admin HTTP API (admin.listen) without relaying; herald run serves it too
  messages show ID    a message: content (secret headers masked), where it is for each endpoint, every attempt
  messages list       messages in every lane and the message log (--endpoint, --topic, --since, --until,
                      --status, --limit, --after)
  messages resend ID  deliver a dead or delivered message again (--endpoint, --new-id, --dry-run)
  status              per endpoint: pending, retrying, dead, oldest age, success rates, breaker, disabled;
                      exit code 1 when something needs attention (--max-pending-age)
                      (messages and status take --json and --source NAME)
  config check        validate the configuration and print warnings
  version             print the version

Global flags:
  --config FILE       configuration file (default herald.yaml, env HERALD_CONFIG)
  --log-format F      json (default) or console; overrides log.format
  --log-level L       debug, info, warn or error; overrides log.level

Environment:
  HERALD_CONFIG       configuration file, when --config is not given
  DATABASE_URL        overrides database.url
  ${VAR}              any variable referenced in the configuration file
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second signal after the first forces an exit.
		<-ctx.Done()
		stop()
		forced := make(chan os.Signal, 1)
		signal.Notify(forced, os.Interrupt, syscall.SIGTERM)
		<-forced
		fmt.Fprintln(os.Stderr, "herald: second signal, exiting without waiting")
		os.Exit(130)
	}()
	// Requests (User-Agent) and logs carry the version `herald version`
	// prints. Set here, before anything runs, not in Main, which tests call
	// while other tests' relays read it.
	webhook.Version = currentBuild().Version
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks errors that are the caller's mistake in invoking herald.
var errUsage = errors.New("usage")

// globals are the flags every command accepts.
type globals struct {
	configPath string
	configSet  bool
	logFormat  string
	logLevel   string
	stdout     io.Writer
	stderr     io.Writer
	// tracer traces the relays' work; set by run from tracing.*, nil
	// (tracing off) otherwise.
	tracer trace.TracerProvider
}

// Main runs herald with args and returns the process exit code: 0 on
// success, 2 for a usage error, 1 for any other failure.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("herald", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.configPath, "config", "", "configuration file")
	fs.StringVar(&g.logFormat, "log-format", "", "json or console")
	fs.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error")
	help := fs.Bool("help", false, "")
	if err := fs.Parse(hoistGlobals(args)); err != nil {
		fmt.Fprintf(stderr, "herald: %v\n\n%s", err, usage)
		return 2
	}
	if *help || fs.NArg() == 0 {
		fmt.Fprint(stdout, usage)
		if *help {
			return 0
		}
		return 2
	}
	g.configSet = g.configPath != ""
	if !g.configSet {
		g.configPath = os.Getenv("HERALD_CONFIG")
		g.configSet = g.configPath != ""
	}
	if g.configPath == "" {
		g.configPath = "herald.yaml"
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(ctx, g, rest)
	case "migrate":
		err = cmdMigrate(ctx, g, rest)
	case "dead":
		err = cmdDead(ctx, g, rest)
	case "endpoints":
		err = cmdEndpoints(ctx, g, rest)
	case "admin":
		err = cmdAdmin(ctx, g, rest)
	case "messages":
		err = cmdMessages(ctx, g, rest)
	case "status":
		err = cmdStatus(ctx, g, rest)
	case "config":
		err = cmdConfig(g, rest)
	case "version":
		fmt.Fprintln(stdout, currentBuild())
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "herald: %v\n\nRun `herald help` for usage.\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "herald: %v\n", err)
		return 1
	}
}

// globalFlags are the flags every command accepts, wherever they stand.
var globalFlags = map[string]bool{"config": true, "log-format": true, "log-level": true}

// hoistGlobals moves the global flags found anywhere in args (up to a "--")
// to the front, so that `herald run --config f` means `herald --config f
// run`, as operators expect from kubectl, docker and River's CLI. A global
// flag whose value is missing stays where it is, for the parser to report.
func hoistGlobals(args []string) []string {
	var globals, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, _, inline := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") || !globalFlags[name] || (!inline && i+1 == len(args)) {
			rest = append(rest, a)
			continue
		}
		globals = append(globals, a)
		if !inline {
			i++
			globals = append(globals, args[i])
		}
	}
	return append(globals, rest...)
}

// parseFlags parses a command's flags, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %s: %v", errUsage, fs.Name(), err)
	}
	return nil
}
