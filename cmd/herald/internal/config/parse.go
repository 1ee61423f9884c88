package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// DatabaseURLEnv is the environment variable that overrides database.url.
const DatabaseURLEnv = "DATABASE_URL"

// Load reads and parses the configuration file at path; see Parse.
func Load(path string, getenv func(string) string) (*Config, error) {
	return LoadLookupEnv(path, lookupFromGetenv(getenv))
}

// LoadLookupEnv is Load with an os.LookupEnv-style lookup, which can tell
// an unset variable from an empty one.
func LoadLookupEnv(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseLookupEnv(data, path, lookupEnv)
}

// Parse parses a herald.yaml document, applies defaults, validates it and
// returns the Config, or an *Error listing every problem found.
//
// filename is used in error messages and to resolve relative TLS file paths.
//
// Each ${NAME} in a scalar value is replaced by getenv(NAME), and $${ stands
// for a literal ${. Expansion happens after parsing, so a variable's value
// is always plain text: it cannot add keys, items or documents. A variable
// that getenv returns "" for is an error, because a func(string) string
// cannot tell an unset variable from an empty one: to allow empty
// variables, pass nil (which reads the process environment with
// os.LookupEnv) or use ParseLookupEnv. A non-empty DATABASE_URL overrides
// database.url.
func Parse(data []byte, filename string, getenv func(string) string) (*Config, error) {
	return ParseLookupEnv(data, filename, lookupFromGetenv(getenv))
}

func lookupFromGetenv(getenv func(string) string) func(string) (string, bool) {
	if getenv == nil {
		return nil
	}
	return func(name string) (string, bool) {
		v := getenv(name)
		return v, v != ""
	}
}

// ParseLookupEnv is Parse with an os.LookupEnv-style lookup: a variable
// that is set to "" expands to "", one that is unset is an error. A nil
// lookupEnv means os.LookupEnv.
func ParseLookupEnv(data []byte, filename string, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	src := &source{file: filename, line: map[string]int{}, env: map[string]string{}}
	cfg := Default()
	d := &decoder{src: src, lookup: lookupEnv, anchors: map[string]ast.Node{}, failed: map[string]bool{}}

	file, err := parseYAML(data)
	if err != nil {
		return nil, &Error{Problems: []*FieldError{syntaxProblem(filename, err)}}
	}
	var body ast.Node
	for _, doc := range file.Docs {
		if doc == nil || doc.Body == nil || isComment(doc.Body) {
			continue
		}
		if body != nil {
			d.failAt(doc.Body, "", errors.New("only one YAML document is allowed"))
			break
		}
		body = doc.Body
	}
	d.decode(body, reflect.ValueOf(cfg).Elem(), "")

	_, hasSources := src.line["sources"]
	if v, ok := lookupEnv(DatabaseURLEnv); ok && v != "" && hasSources {
		d.envIgnored = true // each source has its own url
	} else if ok && v != "" {
		cfg.Database.URL = Secret(v)
		src.env["database.url"] = DatabaseURLEnv
		d.problems = slices.DeleteFunc(d.problems, func(p *FieldError) bool { return p.Field == "database.url" })
		delete(d.failed, "database.url")
	}

	dir := filepath.Dir(filename)
	for i := range cfg.Endpoints {
		e := &cfg.Endpoints[i]
		if _, set := src.line[fmt.Sprintf("endpoints[%d].timeout", i)]; !set {
			e.Timeout = cfg.Delivery.Timeout
		}
		for _, f := range []*string{&e.TLS.CAFile, &e.TLS.CertFile, &e.TLS.KeyFile} {
			if *f != "" && !filepath.IsAbs(*f) {
				*f = filepath.Join(dir, *f)
			}
		}
	}

	problems := d.problems
	cfg.src = src
	cfg.warnings = cfg.check(func(path, value string, err error) {
		if d.failed[""] {
			return // the document is not a mapping
		}
		for p := path; p != ""; p = parentPath(p) {
			if d.failed[p] {
				return // already reported while decoding
			}
		}
		file, line := src.locate(path)
		problems = append(problems, &FieldError{File: file, Line: line, Field: path, Value: value, Err: err})
	})
	if d.envIgnored {
		cfg.warnings = append(cfg.warnings, DatabaseURLEnv+" is set but ignored: sources are configured, each with its own url")
	}
	if len(problems) > 0 {
		sortProblems(problems)
		return nil, &Error{Problems: problems}
	}
	return cfg, nil
}

func isComment(n ast.Node) bool {
	switch n.(type) {
	case *ast.CommentGroupNode, *ast.CommentNode:
		return true
	}
	return false
}

// syntaxProblem turns a go-yaml parse error into a FieldError with a line,
// leaving out the source excerpt go-yaml would print (it may show secrets).
func syntaxProblem(filename string, err error) *FieldError {
	var se *yaml.SyntaxError
	if errors.As(err, &se) {
		line := 0
		if se.Token != nil && se.Token.Position != nil {
			line = se.Token.Position.Line
		}
		return &FieldError{File: filename, Line: line, Err: fmt.Errorf("invalid YAML: %s", se.Message)}
	}
	var ye yaml.Error
	if errors.As(err, &ye) {
		line := 0
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			line = tk.Position.Line
		}
		return &FieldError{File: filename, Line: line, Err: fmt.Errorf("invalid YAML: %s", ye.GetMessage())}
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return &FieldError{File: filename, Err: fmt.Errorf("invalid YAML: %s", msg)}
}

// parseYAML is parser.ParseBytes, turning a panic in go-yaml into an error
// so that no input can crash Herald at startup.
func parseYAML(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("go-yaml panicked: %v", r)
		}
	}()
	return parser.ParseBytes(data, 0)
}
