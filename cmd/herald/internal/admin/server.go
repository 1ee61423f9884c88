package admin

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

// Limits of the server: each request is bounded in size and time.
const (
	// MaxBodyBytes caps a request body; an endpoint's settings fit in a few
	// KiB.
	MaxBodyBytes = 64 << 10
	// MaxHeaderBytes caps a request's headers.
	MaxHeaderBytes = 64 << 10
	// ReadHeaderTimeout and ReadTimeout bound how long a client may take to
	// send its request.
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	// RequestTimeout bounds the work of one request (a purge of many rows
	// is the longest); WriteTimeout leaves time to send its answer.
	RequestTimeout = 5 * time.Minute
	WriteTimeout   = RequestTimeout + 10*time.Second
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout = 2 * time.Minute
	// ShutdownTimeout bounds how long Stop waits for requests in flight.
	ShutdownTimeout = 10 * time.Second
)

// Source is a database the API acts on.
type Source struct {
	// Name is what ?source= names; with one source it may be left out.
	Name string
	DB   ops.DB
}

// Config is what the API needs.
type Config struct {
	// Sources are the databases; at least one. With several, each /v1
	// request names one with ?source=NAME.
	Sources []Source
	// Tokens are the bearer tokens accepted; at least one.
	Tokens []config.AdminToken
	// Herald is the configuration endpoints are checked against before
	// they are written (ops.CheckEndpoint), as the CLI does.
	Herald *config.Config
	// Logger receives one line per request (writes at info, reads at
	// debug) and the causes of 500s. Defaults to zerolog.Nop().
	Logger *zerolog.Logger
}

// api serves the routes.
type api struct {
	sources []Source
	tokens  tokenSet
	herald  *config.Config
	log     zerolog.Logger
}

// NewHandler returns the API as an http.Handler.
func NewHandler(cfg Config) (http.Handler, error) {
	switch {
	case len(cfg.Sources) == 0:
		return nil, errors.New("admin: no sources")
	case len(cfg.Tokens) == 0:
		return nil, errors.New("admin: no tokens (admin.tokens)")
	case cfg.Herald == nil:
		return nil, errors.New("admin: no configuration")
	}
	a := &api{sources: cfg.Sources, tokens: newTokenSet(cfg.Tokens), herald: cfg.Herald, log: zerolog.Nop()}
	if cfg.Logger != nil {
		a.log = cfg.Logger.With().Str("component", "admin").Logger()
	}
	return a.handler(routes(a)), nil
}

// handler serves rts, /openapi.json, and JSON 404s for the rest.
func (a *api) handler(rts []route) http.Handler {
	mux := http.NewServeMux()
	// Routes are grouped by path and registered without a method, so that
	// a wrong method gets a JSON 405 and a 404 a JSON body too.
	byPath := map[string]map[string]route{}
	var paths []string
	for _, rt := range rts {
		if byPath[rt.path] == nil {
			byPath[rt.path] = map[string]route{}
			paths = append(paths, rt.path)
		}
		byPath[rt.path][rt.method] = rt
	}
	for _, p := range paths {
		mux.Handle(p, a.dispatch(byPath[p]))
	}
	mux.HandleFunc("GET /openapi.json", serveOpenAPI)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such route: " + r.Method + " " + r.URL.Path})
	})
	return mux
}

// dispatch serves one path: it picks the route by method, checks the token
// and the source, bounds the body and the time, and writes the result.
func (a *api) dispatch(methods map[string]route) http.Handler {
	allow := make([]string, 0, len(methods))
	for m := range methods {
		allow = append(allow, m)
	}
	slices.Sort(allow)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rt, ok := methods[r.Method]
		if !ok {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeJSON(w, http.StatusMethodNotAllowed, apiError{Error: "method " + r.Method + " not allowed; use " + strings.Join(allow, " or ")})
			return
		}
		tok, status, aerr := a.tokens.authorize(r, rt.write)
		if status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			}
			writeJSON(w, status, aerr)
			a.log.Warn().Str("method", r.Method).Str("route", rt.path).Str("token", tok).Str("remote", r.RemoteAddr).
				Int("status", status).Msg("admin request refused")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
		defer cancel()
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		req := &request{Request: r, ctx: ctx}
		var out any
		var err error
		status = http.StatusOK
		if req.db, err = a.source(r); err == nil {
			status, out, err = rt.handle(req)
		}
		if err != nil {
			var e apiError
			status, e = a.errorResponse(err, rt)
			out = e
		}
		writeJSON(w, status, out)
		ev := a.log.Debug()
		if rt.write {
			ev = a.log.Info()
		}
		ev.Str("method", r.Method).Str("route", rt.path).Str("path", r.URL.Path).Str("token", tok).
			Int("status", status).Dur("duration", time.Since(start)).Msg("admin request")
	})
}

// source returns the database ?source= names, or the only one.
func (a *api) source(r *http.Request) (ops.DB, error) {
	name := r.URL.Query().Get("source")
	names := make([]string, len(a.sources))
	for i, s := range a.sources {
		if s.Name == name || (name == "" && len(a.sources) == 1) {
			return s.DB, nil
		}
		names[i] = s.Name
	}
	if name == "" {
		return nil, badRequest("source", "required with several sources: "+strings.Join(names, ", "))
	}
	return nil, badRequest("source", fmt.Sprintf("no such source %q; the sources are: %s", name, strings.Join(names, ", ")))
}

// Server is the API on its own http.Server, owned by whoever calls Start
// and Stop.
type Server struct {
	srv  *http.Server
	log  zerolog.Logger
	addr net.Addr
	wg   sync.WaitGroup
}

// NewServer returns a server of the API with every limit set.
func NewServer(cfg Config) (*Server, error) {
	h, err := NewHandler(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{log: zerolog.Nop()}
	if cfg.Logger != nil {
		s.log = cfg.Logger.With().Str("component", "admin").Logger()
	}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		// net/http's own complaints (a handler's panic, a broken
		// connection) go to the log as JSON like everything else.
		ErrorLog: log.New(errorLogWriter{s.log}, "", 0),
	}
	return s, nil
}

// errorLogWriter writes each line of net/http's error log as an error.
type errorLogWriter struct{ log zerolog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	w.log.Error().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Start serves on ln until Stop; it does not block.
func (s *Server) Start(ln net.Listener) {
	s.addr = ln.Addr()
	s.wg.Go(func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("admin API stopped")
		}
	})
}

// Addr is the address Start serves on.
func (s *Server) Addr() net.Addr { return s.addr }

// Stop stops accepting requests and waits for those in flight, until ctx
// ends (then it closes their connections). It is safe to call when Start
// never ran, and more than once.
func (s *Server) Stop(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	s.wg.Wait()
	return err
}
