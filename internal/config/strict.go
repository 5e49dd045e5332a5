package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// KeyError is a configuration problem tied to one key. Its message reads
// "detect.netscan.window: must be > 0" so an operator knows what to fix.
type KeyError struct {
	File string // file name, empty when parsing bytes
	Line int    // 1-based line, 0 when unknown
	Key  string // dotted path, e.g. "detect.netscan.window"
	Msg  string
}

func (e *KeyError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// decodeStrict decodes YAML into v, refusing unknown keys and wrong types;
// every error names the key it is about.
func decodeStrict(file string, data []byte, v any) error {
	if ke := checkNumbers(data, reflect.TypeOf(v)); ke != nil {
		ke.File = file
		return ke
	}
	err := yaml.UnmarshalWithOptions(data, v, yaml.DisallowUnknownField())
	if err == nil {
		return nil
	}
	ke := &KeyError{File: file, Msg: err.Error()}
	var ye yaml.Error
	if errors.As(err, &ye) {
		ke.Msg = ye.GetMessage()
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			ke.Line = tk.Position.Line
			ke.Key = pathAt(data, tk.Position)
		}
		var uf *yaml.UnknownFieldError
		if errors.As(err, &uf) {
			ke.Msg = "unknown key"
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			ke.Msg = fmt.Sprintf("wrong type: want %s, got %s", kindName(te.DstType.String()), kindName(te.SrcType.String()))
		}
	} else {
		// Errors from UnmarshalText and friends ("time: invalid duration
		// \"abc\"") carry no token: find the key by the quoted value.
		ke.Msg = strings.TrimSpace(err.Error())
		if m := quoted.FindStringSubmatch(ke.Msg); m != nil {
			ke.Key, ke.Line = pathOfValue(data, m[1])
		}
	}
	return ke
}

// checkNumbers finds numbers the decoder would quietly change: a fraction
// for a whole-number key (threshold_pps: 1.5 would become 1) and a
// negative number for a key that cannot be negative (its message would be
// the decoder's "cannot unmarshal -5 into Go value of type uint64").
func checkNumbers(data []byte, t reflect.Type) *KeyError {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil // the decoder reports syntax errors
	}
	var ke *KeyError
	for _, doc := range f.Docs {
		ast.Walk(visitor(func(n ast.Node) {
			if ke != nil {
				return
			}
			var msg string
			at := n // the node the problem is at
			switch n := n.(type) {
			case *ast.FloatNode:
				if k := kindAt(t, n.GetPath()); isInt(k) && n.Value != math.Trunc(n.Value) {
					msg = fmt.Sprintf("must be a whole number, got %s", n.GetToken().Value)
				}
			case *ast.IntegerNode:
				if k := kindAt(t, n.GetPath()); isUint(k) && strings.HasPrefix(n.GetToken().Value, "-") {
					msg = fmt.Sprintf("must not be negative, got %s", n.GetToken().Value)
				}
			case *ast.MappingValueNode:
				msg, at = quotedNumber(t, n.Value), n.Value
			case *ast.SequenceNode:
				for _, v := range n.Values {
					if msg = quotedNumber(t, v); msg != "" {
						at = v
						break
					}
				}
			}
			if msg != "" {
				ke = &KeyError{Key: strings.TrimPrefix(strings.TrimPrefix(at.GetPath(), "$"), "."), Msg: msg}
				if tk := at.GetToken(); tk != nil && tk.Position != nil {
					ke.Line = tk.Position.Line
				}
			}
		}), doc)
	}
	return ke
}

// quotedNumber returns the problem with a value node that is a number in
// quotes where the Go value is a number ("200"), which the decoder would
// take as the number: a number in quotes is text, as a misspelt one is.
func quotedNumber(t reflect.Type, v ast.Node) string {
	s, ok := v.(*ast.StringNode)
	if !ok {
		return ""
	}
	if k := kindAt(t, s.GetPath()); !isInt(k) && k != reflect.Float32 && k != reflect.Float64 {
		return ""
	}
	if _, err := strconv.ParseFloat(s.Value, 64); err != nil {
		return "" // text: the decoder says it is the wrong type
	}
	return fmt.Sprintf("must be a number, not the text %q (no quotes)", s.Value)
}

func isInt(k reflect.Kind) bool { return k >= reflect.Int && k <= reflect.Int64 || isUint(k) }

func isUint(k reflect.Kind) bool { return k >= reflect.Uint && k <= reflect.Uint64 }

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// kindAt returns the kind of the Go value the YAML path ("$.detect.
// packet_limit.threshold_pps", "$.ports[2]") decodes into, or Invalid when
// the path does not lead to a plain number (unknown keys, maps, types that
// parse their own text such as durations).
func kindAt(t reflect.Type, path string) reflect.Kind {
	path = strings.TrimPrefix(path, "$")
	for path != "" {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case strings.HasPrefix(path, "["):
			i := strings.IndexByte(path, ']')
			if i < 0 || (t.Kind() != reflect.Slice && t.Kind() != reflect.Array) {
				return reflect.Invalid
			}
			t, path = t.Elem(), path[i+1:]
		case strings.HasPrefix(path, "."):
			path = path[1:]
			i := strings.IndexAny(path, ".[")
			if i < 0 {
				i = len(path)
			}
			name := path[:i]
			path = path[i:]
			if t.Kind() != reflect.Struct {
				return reflect.Invalid
			}
			ft, ok := fieldByYAMLName(t, name)
			if !ok {
				return reflect.Invalid
			}
			t = ft
		default:
			return reflect.Invalid
		}
	}
	if t == reflect.TypeFor[time.Duration]() || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return reflect.Invalid // durations are reported as durations
	}
	return t.Kind()
}

// fieldByYAMLName finds the field of struct t whose yaml tag (or, without
// one, lower-cased name) is name, looking into embedded structs.
func fieldByYAMLName(t reflect.Type, name string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			if ft, ok := fieldByYAMLName(f.Type, name); ok {
				return ft, true
			}
			continue
		}
		if tag == name || tag == "" && strings.ToLower(f.Name) == name {
			return f.Type, true
		}
	}
	return nil, false
}

func kindName(t string) string {
	switch t {
	case "string":
		return "text"
	case "uint64", "int", "int64", "uint32", "uint16", "uint8", "uint":
		return "a whole number"
	case "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "time.Duration":
		return "a duration like 300s or 5m"
	}
	if strings.HasPrefix(t, "[]") {
		return "a list"
	}
	if strings.HasPrefix(t, "map[") {
		return "a mapping"
	}
	return t
}

// pathAt returns the dotted key path of the YAML node at pos ("" if none).
func pathAt(data []byte, pos *token.Position) string {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return ""
	}
	var found string
	for _, doc := range f.Docs {
		ast.Walk(visitor(func(n ast.Node) {
			tk := n.GetToken()
			if found != "" || tk == nil || tk.Position == nil {
				return
			}
			if tk.Position.Line == pos.Line && tk.Position.Column == pos.Column {
				found = n.GetPath()
			}
		}), doc)
	}
	found = strings.TrimPrefix(strings.TrimPrefix(found, "$"), ".")
	return found
}

// quoted finds the first quoted value in an error message.
var quoted = regexp.MustCompile(`"([^"]+)"`)

// pathOfValue returns the dotted path and line of the first scalar whose
// text is v ("" when none or when the value is ambiguous).
func pathOfValue(data []byte, v string) (string, int) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return "", 0
	}
	var paths []string
	line := 0
	for _, doc := range f.Docs {
		ast.Walk(visitor(func(n ast.Node) {
			switch n.Type() {
			case ast.StringType, ast.IntegerType, ast.FloatType, ast.BoolType, ast.NullType, ast.InfinityType, ast.NanType:
			default:
				return
			}
			tk := n.GetToken()
			if tk == nil || tk.Value != v {
				return
			}
			// A mapping key is a scalar too; only values count.
			p := strings.TrimPrefix(strings.TrimPrefix(n.GetPath(), "$"), ".")
			if len(paths) == 0 && tk.Position != nil {
				line = tk.Position.Line
			}
			paths = append(paths, p)
		}), doc)
	}
	if len(paths) == 0 {
		return "", 0
	}
	return paths[0], line
}

type visitor func(ast.Node)

func (v visitor) Visit(n ast.Node) ast.Visitor { v(n); return v }
