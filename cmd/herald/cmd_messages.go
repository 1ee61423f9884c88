package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

const messagesUsage = `herald messages show ID [--json]
       herald messages list [--endpoint E] [--topic T] [--since D] [--until D]
                            [--status pending|retrying|dead|delivered] [--limit N] [--after CURSOR] [--json]
       herald messages resend ID [--endpoint E] [--new-id] [--dry-run] [--json]

D is an RFC 3339 time (2026-12-01T10:00:00Z) or a duration ago (24h). Every command
takes --source NAME, the source (database) to act on, required when the configuration
has several sources.`

func cmdMessages(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: messages show|list|resend\n\n%s", errUsage, messagesUsage)
	}
	sub, args := args[0], args[1:]
	cmd := "messages " + sub
	// Each subcommand defines only the flags it honours, so that a flag it
	// would ignore is refused by name.
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	sourceName := fs.String("source", "", "the source (database) to act on; required with several sources")
	var (
		f            ops.MessageFilter
		since, until string
		req          ops.ResendRequest
		dryRun       bool
	)
	switch sub {
	case "show":
	case "list":
		fs.StringVar(&f.Endpoint, "endpoint", "", "only this endpoint's messages")
		fs.StringVar(&f.Topic, "topic", "", "only this topic")
		fs.StringVar(&since, "since", "", "only messages created at or after this time, or this long ago")
		fs.StringVar(&until, "until", "", "only messages created before this time, or this long ago")
		fs.StringVar(&f.Status, "status", "", "only this state: "+strings.Join(ops.MessageStates, ", "))
		fs.IntVar(&f.Limit, "limit", ops.MessageListLimitDefault, "list at most this many")
		fs.StringVar(&f.After, "after", "", "the next page: the cursor the previous page ended with")
	case "resend":
		fs.StringVar(&req.Endpoint, "endpoint", "", "send to this endpoint only")
		fs.BoolVar(&req.NewID, "new-id", false, "give the copy a new id (receivers take it as a new message)")
		fs.BoolVar(&dryRun, "dry-run", false, "say what would be resent, and change nothing")
	case "help":
		fmt.Fprintln(g.stdout, messagesUsage)
		return nil
	default:
		return fmt.Errorf("%w: unknown messages command %q", errUsage, sub)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case sub == "list" && len(pos) > 0:
		return fmt.Errorf("%w: messages list takes no arguments (got %q)", errUsage, pos[0])
	case sub != "list" && len(pos) != 1:
		return fmt.Errorf("%w: messages %s needs exactly one message ID", errUsage, sub)
	}
	now := time.Now()
	for _, t := range []struct {
		name string
		s    string
		dst  *time.Time
	}{{"since", since, &f.Since}, {"until", until, &f.Until}} {
		if t.s == "" {
			continue
		}
		if *t.dst, err = ops.ParseTime(t.name, t.s, now); err != nil {
			return filterUsage(cmd, err)
		}
	}
	_, pool, err := openSourcePool(ctx, g, *sourceName)
	if err != nil {
		return err
	}
	defer pool.Close()

	var out any
	var print func(io.Writer) error
	switch sub {
	case "show":
		m, err := ops.GetMessage(ctx, pool, pos[0])
		if err := filterUsage(cmd, err); err != nil {
			return err
		}
		out, print = m, messageView(m).print
	case "list":
		page, err := ops.ListMessages(ctx, pool, f)
		if err := filterUsage(cmd, err); err != nil {
			return err
		}
		out, print = page, messagePage(page).print
	case "resend":
		req.ID = pos[0]
		resend := ops.ResendMessage
		if dryRun {
			resend = ops.ResendMessageDryRun
		}
		res, err := resend(ctx, pool, req)
		if err := filterUsage(cmd, err); err != nil {
			return err
		}
		out, print = res, resendOutput(res).print
	}
	if *asJSON {
		return printJSON(g.stdout, out)
	}
	return print(g.stdout)
}

// timeOrDash formats t for a table.
func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func statusOrDash(s *int) string {
	if s == nil {
		return "-"
	}
	return strconv.Itoa(*s)
}

type messageView ops.Message

func (m messageView) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id:\t%s\n", m.ID)
	if m.Topic != "" {
		fmt.Fprintf(tw, "topic:\t%s\n", m.Topic)
		fmt.Fprintf(tw, "key:\t%s\n", orDash(m.Key))
		fmt.Fprintf(tw, "target:\t%s\n", orDash(m.Target))
		fmt.Fprintf(tw, "created:\t%s\n", m.CreatedAt.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(tw, "content:\tunknown (only attempts are left; history.messages keeps delivered messages)\n")
	}
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		fmt.Fprintf(tw, "header:\t%s: %s\n", k, m.Headers[k])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if m.Payload != nil {
		fmt.Fprintf(w, "payload:\n  %s\n", m.Payload)
	}

	fmt.Fprintln(w, "\nwhere it is:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  STATE\tENDPOINT\tATTEMPTS\tAT\tSTATUS\tDETAIL")
	if p := m.Pending; p != nil {
		detail := "waiting to be claimed"
		if p.LeasedUntil != nil {
			detail = "claimed: being delivered, lease until " + timeOrDash(p.LeasedUntil)
		}
		fmt.Fprintf(tw, "  pending\t%s\t%d\t-\t-\t%s (seq %d)\n", orDash(m.Target), p.Claims, detail, p.Seq)
	}
	for _, r := range m.Retrying {
		at := timeOrDash(r.NextAttemptAt)
		if r.NextAttemptAt == nil {
			at = "parked"
		}
		fmt.Fprintf(tw, "  retrying\t%s\t%d\t%s\t%s\t%s\n", r.Endpoint, r.Attempts, at, statusOrDash(r.LastStatus), r.LastError)
	}
	for _, d := range m.Dead {
		fmt.Fprintf(tw, "  dead\t%s\t%d\t%s\t%s\t%s: %s (dead_id %d)\n", orDash(d.Endpoint), d.Attempts,
			d.DiedAt.UTC().Format(time.RFC3339), statusOrDash(d.LastStatus), d.Reason, d.LastError, d.DeadID)
	}
	for _, d := range m.Delivered {
		fmt.Fprintf(tw, "  delivered\t%s\t-\t%s\t-\tin outbox.message_log (seq %d)\n", orDash(m.Target),
			d.DeliveredAt.UTC().Format(time.RFC3339), d.Seq)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if m.Pending == nil && len(m.Retrying)+len(m.Dead)+len(m.Delivered) == 0 {
		fmt.Fprintln(w, "  (in no lane and not in the message log: delivered, or purged)")
	}

	fmt.Fprintf(w, "\nattempts (%d):\n", len(m.Attempts))
	if m.AttemptsOmitted > 0 {
		fmt.Fprintf(w, "  (%d older attempts left out)\n", m.AttemptsOmitted)
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  AT\tENDPOINT\tATTEMPT\tDURATION\tSTATUS\tERROR\tRESPONSE")
	for _, a := range m.Attempts {
		errText := "-"
		if a.ErrorClass != "" {
			errText = a.ErrorClass + ": " + a.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%.1fms\t%s\t%s\t%s\n", a.At.UTC().Format(time.RFC3339Nano), a.Endpoint, a.Attempt,
			a.DurationMS, statusOrDash(a.Status), errText, oneLine(a.Response, 80))
	}
	return tw.Flush()
}

// oneLine shortens s to at most n runes on one line, for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return orDash(s)
}

type messagePage ops.MessageList

func (p messagePage) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tENDPOINT\tTOPIC\tCREATED\tAT\tATTEMPTS\tLAST_STATUS\tLAST_ERROR")
	for _, m := range p.Messages {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.Status, orDash(m.Endpoint), m.Topic,
			m.CreatedAt.UTC().Format(time.RFC3339), timeOrDash(m.At), m.Attempts, statusOrDash(m.LastStatus), oneLine(m.LastError, 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case len(p.Messages) == 0:
		_, err := fmt.Fprintln(w, "(no messages)")
		return err
	case p.Next != "":
		_, err := fmt.Fprintf(w, "(more: add --after %s)\n", p.Next)
		return err
	}
	return nil
}

type resendOutput ops.ResendResult

func (r resendOutput) print(w io.Writer) error {
	verb := "resent"
	if r.DryRun {
		verb = "would resend"
	}
	to := "the subscribers of " + r.Topic
	if r.Endpoint != "" {
		to = "endpoint " + r.Endpoint
	}
	if _, err := fmt.Fprintf(w, "%s the %s message as %s to %s\n", verb, r.From, r.ID, to); err != nil {
		return err
	}
	if len(r.StillRetrying) > 0 {
		_, err := fmt.Fprintf(w, "note: %s still retrying for %s, which may get it twice\n", r.ID, strings.Join(r.StillRetrying, ", "))
		return err
	}
	return nil
}
