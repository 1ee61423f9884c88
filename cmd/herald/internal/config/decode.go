package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// source remembers where each key of a parsed Config came from, so that
// Validate can point at lines.
type source struct {
	file string
	line map[string]int    // key path -> line of the key (or list item)
	env  map[string]string // key path -> environment variable that set it
}

// locate returns the file and line for path, falling back to the closest
// enclosing key that is in the file.
func (s *source) locate(path string) (string, int) {
	if s == nil {
		return "", 0
	}
	if name, ok := s.env[path]; ok {
		return "$" + name, 0
	}
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := s.line[p]; ok {
			return s.file, l
		}
	}
	return s.file, 0
}

// has reports whether path is a key in the file.
func (s *source) has(path string) bool {
	if s == nil {
		return false
	}
	_, ok := s.line[path]
	return ok
}

// parentPath returns "a.b" for "a.b.c" and "a.b" for "a.b[2]".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[Secret]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
	endpointType = reflect.TypeFor[Endpoint]()
	sourceType   = reflect.TypeFor[Source]()
	tokenType    = reflect.TypeFor[AdminToken]()
)

// decoder fills a Config from a YAML AST. Unlike yaml.Unmarshal it keeps
// going after a problem, so that every problem is reported at once, and it
// expands ${VAR} in scalar values after parsing.
type decoder struct {
	src      *source
	lookup   func(string) (string, bool)
	anchors  map[string]ast.Node
	problems []*FieldError
	failed   map[string]bool // key paths whose value could not be decoded
	// envIgnored is set when DATABASE_URL is set but sources are configured.
	envIgnored bool
}

// fail records a problem with the value at path.
func (d *decoder) fail(path, value string, err error) {
	file, line := d.src.locate(path)
	d.problems = append(d.problems, &FieldError{File: file, Line: line, Field: path, Value: value, Err: err})
	d.failed[path] = true
}

// failAt records a problem at an explicit node, for keys that have no
// recorded position (unknown, duplicate or malformed keys).
func (d *decoder) failAt(n ast.Node, path string, err error) {
	d.problems = append(d.problems, &FieldError{File: d.src.file, Line: nodeLine(n), Field: path, Err: err})
}

func nodeLine(n ast.Node) int {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return 0
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 0
	}
	return tk.Position.Line
}

// maxAliasChain bounds alias-to-alias indirection.
const maxAliasChain = 64

// resolve strips anchors and tags and follows aliases. It returns nil for a
// missing value; ok is false after a reported problem.
func (d *decoder) resolve(n ast.Node, path string) (_ ast.Node, ok bool) {
	for range maxAliasChain {
		if n == nil || reflect.ValueOf(n).IsNil() {
			return nil, true
		}
		switch t := n.(type) {
		case *ast.AnchorNode:
			if t.Name != nil && t.Name.GetToken() != nil {
				d.anchors[t.Name.GetToken().Value] = t.Value
			}
			n = t.Value
		case *ast.TagNode:
			n = t.Value
		case *ast.AliasNode:
			name := ""
			if t.Value != nil && t.Value.GetToken() != nil {
				name = t.Value.GetToken().Value
			}
			target, found := d.anchors[name]
			if !found {
				d.fail(path, "", fmt.Errorf("alias *%s refers to no anchor defined before it", name))
				return nil, false
			}
			n = target
		default:
			return n, true
		}
	}
	d.fail(path, "", errors.New("too many nested aliases"))
	return nil, false
}

// registerAnchors records the anchors under a subtree that is otherwise
// skipped, such as the value of an unknown key.
func (d *decoder) registerAnchors(n ast.Node) {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return
	}
	ast.Walk(anchorVisitor(d.anchors), n)
}

type anchorVisitor map[string]ast.Node

func (v anchorVisitor) Visit(n ast.Node) ast.Visitor {
	if a, ok := n.(*ast.AnchorNode); ok && a.Name != nil && a.Name.GetToken() != nil {
		v[a.Name.GetToken().Value] = a.Value
	}
	return v
}

func kindOf(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	default:
		return "a " + strings.ToLower(n.Type().String())
	}
}

// scalar returns the expanded text of a scalar node. want describes the
// expected value for error messages. A secret's text is never reported.
func (d *decoder) scalar(n ast.Node, path, want string) (string, bool) {
	var s string
	switch t := n.(type) {
	case *ast.StringNode:
		s = t.Value
	case *ast.LiteralNode:
		if t.Value != nil {
			s = t.Value.Value
		}
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		if tk := n.GetToken(); tk != nil {
			s = tk.Value
		}
	default:
		d.fail(path, "", fmt.Errorf("must be %s, not %s", want, kindOf(n)))
		return "", false
	}
	s, err := expand(s, d.lookup)
	if err != nil {
		d.fail(path, "", err)
		return "", false
	}
	return s, true
}

func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return n == nil || ok
}

// decode sets v from n. A null or missing value leaves v unchanged, so that
// v's default stands.
func (d *decoder) decode(n ast.Node, v reflect.Value, path string) {
	n, ok := d.resolve(n, path)
	if !ok || isNull(n) {
		return
	}
	switch v.Type() {
	case durationType:
		s, ok := d.scalar(n, path, `a duration like "15s" or "1h30m"`)
		if !ok {
			return
		}
		dur, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			d.fail(path, s, errors.New(`must be a duration with a unit, like "500ms", "15s" or "1h30m"`))
			return
		}
		v.SetInt(int64(dur))
		return
	case secretType:
		s, ok := d.scalar(n, path, "a string")
		if ok {
			v.SetString(s)
		}
		return
	case prefixType:
		s, ok := d.scalar(n, path, `a CIDR like "10.0.0.0/8"`)
		if !ok {
			return
		}
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			d.fail(path, s, errors.New(`must be a CIDR like "10.0.0.0/8" or "fd00::/8"`))
			return
		}
		v.Set(reflect.ValueOf(p.Masked()))
		return
	}

	switch v.Kind() {
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path, "true or false")
		if !ok {
			return
		}
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.fail(path, s, errors.New("must be true or false"))
		}
	case reflect.Int, reflect.Int64: // time.Duration, also Int64, is handled above
		s, ok := d.scalar(n, path, "an integer")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
		if err != nil || (v.Kind() == reflect.Int && (i < math.MinInt32 || i > math.MaxInt32)) {
			d.fail(path, s, errors.New("must be an integer"))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		s, ok := d.scalar(n, path, "a number")
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(path, s, errors.New("must be a number"))
			return
		}
		v.SetFloat(f)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	default:
		panic("config: no decoder for " + v.Type().String())
	}
}

func (d *decoder) decodeSlice(n ast.Node, v reflect.Value, path string) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.fail(path, "", fmt.Errorf("must be a list, not %s", kindOf(n)))
		return
	}
	out := reflect.MakeSlice(v.Type(), 0, len(seq.Values))
	for i, item := range seq.Values {
		ip := fmt.Sprintf("%s[%d]", path, i)
		if l := nodeLine(item); l > 0 {
			d.src.line[ip] = l
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		if elem.Type() == endpointType {
			elem.Set(reflect.ValueOf(DefaultEndpoint()))
		} else if elem.Type() == sourceType {
			elem.Set(reflect.ValueOf(DefaultSource()))
		} else if elem.Type() == tokenType {
			elem.Set(reflect.ValueOf(DefaultAdminToken()))
		}
		d.decode(item, elem, ip)
		out = reflect.Append(out, elem)
	}
	v.Set(out)
}

func mappingPairs(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch t := n.(type) {
	case *ast.MappingNode:
		return t.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{t}, true
	}
	return nil, false
}

// key returns the text of a mapping key, reporting merge keys and keys that
// are not scalars.
func (d *decoder) key(mv *ast.MappingValueNode, path string) (string, bool) {
	if mv.Key == nil || reflect.ValueOf(mv.Key).IsNil() {
		d.failAt(mv, path, errors.New("missing key"))
		return "", false
	}
	if mv.Key.IsMergeKey() {
		d.failAt(mv.Key, path, errors.New("merge keys (<<) are not supported; use an alias (*name) on a whole value instead"))
		return "", false
	}
	var n ast.Node = mv.Key
	if mk, ok := n.(*ast.MappingKeyNode); ok {
		n = mk.Value
	}
	if t, ok := n.(*ast.TagNode); ok {
		n = t.Value
	}
	switch t := n.(type) {
	case *ast.StringNode:
		return t.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NullNode, *ast.InfinityNode, *ast.NanNode:
		if tk := n.GetToken(); tk != nil {
			return tk.Value, true
		}
	}
	d.failAt(mv.Key, path, errors.New("keys must be plain strings"))
	return "", false
}

func (d *decoder) decodeMap(n ast.Node, v reflect.Value, path string) {
	pairs, ok := mappingPairs(n)
	if !ok {
		d.fail(path, "", fmt.Errorf("must be a mapping, not %s", kindOf(n)))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(pairs))
	for _, mv := range pairs {
		key, ok := d.key(mv, path)
		if !ok {
			continue
		}
		kp := joinPath(path, key)
		kv := reflect.ValueOf(key).Convert(v.Type().Key())
		if m.MapIndex(kv).IsValid() {
			d.failAt(mv.Key, kp, errors.New("duplicate key"))
			continue
		}
		d.src.line[kp] = nodeLine(mv.Key)
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(mv.Value, elem, kp)
		m.SetMapIndex(kv, elem)
	}
	v.Set(m)
}

func (d *decoder) decodeStruct(n ast.Node, v reflect.Value, path string) {
	pairs, ok := mappingPairs(n)
	if !ok {
		err := fmt.Errorf("must be a mapping, not %s", kindOf(n))
		if path == "" { // the whole document: nothing else is worth reporting
			d.failAt(n, path, err)
			d.failed[path] = true
			return
		}
		d.fail(path, "", err)
		return
	}
	fields := yamlFields(v.Type())
	seen := make(map[string]bool, len(pairs))
	for _, mv := range pairs {
		key, ok := d.key(mv, path)
		if !ok {
			d.registerAnchors(mv.Value)
			continue
		}
		kp := joinPath(path, key)
		idx, known := fields[key]
		if !known {
			d.failAt(mv.Key, kp, unknownKeyError(key, fields))
			d.registerAnchors(mv.Value)
			continue
		}
		if seen[key] {
			d.failAt(mv.Key, kp, errors.New("duplicate key"))
			d.registerAnchors(mv.Value)
			continue
		}
		seen[key] = true
		d.src.line[kp] = nodeLine(mv.Key)
		d.decode(mv.Value, v.Field(idx), kp)
	}
}

var fieldCache sync.Map // reflect.Type -> map[string]int

// yamlFields maps the yaml tag of each field of struct type t to its index.
func yamlFields(t reflect.Type) map[string]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]int)
	}
	m := make(map[string]int)
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.IsExported() && name != "" && name != "-" {
			m[name] = i
		}
	}
	fieldCache.Store(t, m)
	return m
}

// unknownKeyError says a key is unknown and suggests the closest known key.
func unknownKeyError(key string, fields map[string]int) error {
	best, bestDist := "", 3 // suggest only within an edit distance of 2
	for known := range fields {
		if dist := editDistance(strings.ToLower(key), known); dist < bestDist || dist == bestDist && known < best {
			best, bestDist = known, dist
		}
	}
	if best != "" {
		return fmt.Errorf("unknown key (did you mean %q?)", best)
	}
	return errors.New("unknown key")
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
