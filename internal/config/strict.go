package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

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
