package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a config problem an operator can act on: it names the file, the
// line and the key path (e.g. sites[0].upstream.targets[1]).
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Key != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// Errors is every problem found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// positions finds the line of a key path in the parsed YAML tree.
type positions struct{ root *yaml.Node }

// line returns the line of the value at path ("sites", 0, "routes", 2,
// "regex"), or of the deepest existing ancestor when the key is absent.
func (p positions) line(path ...any) int {
	n := p.root
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	best := n.Line
	for _, step := range path {
		var next *yaml.Node
		switch s := step.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == s {
						best = n.Content[i].Line
						next = n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && s < len(n.Content) {
				next = n.Content[s]
				best = next.Line
			}
		}
		if next == nil {
			return best
		}
		n = next
	}
	return best
}

// keysByLine maps each line to the key path of the deepest mapping key
// written on it (line 4 of `tls:\n  ...\n  versions: "1.2"` is tls.versions).
func keysByLine(root *yaml.Node) map[int][]any {
	out := map[int][]any{}
	var walk func(n *yaml.Node, path []any)
	walk = func(n *yaml.Node, path []any) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				kp := append(append([]any(nil), path...), k.Value)
				if len(kp) > len(out[k.Line]) {
					out[k.Line] = kp
				}
				walk(n.Content[i+1], kp)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, append(append([]any(nil), path...), i))
			}
		}
	}
	walk(root, nil)
	return out
}

// KeyString renders a key path as sites[0].routes[2].regex, the form every
// config error and lint finding uses.
func KeyString(path ...any) string {
	var b strings.Builder
	for _, step := range path {
		switch s := step.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		case int:
			b.WriteString("[" + strconv.Itoa(s) + "]")
		}
	}
	return b.String()
}

var yamlLineRE = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
var unknownFieldRE = regexp.MustCompile(`^field (.+) not found in type (\S+)$`)

// decodeErrors turns the yaml package's errors into Errors with file and
// line; root, when not nil, is the parsed file, used to name the key of an
// error that only has a line.
func decodeErrors(file string, err error, root *yaml.Node) Errors {
	var out Errors
	var lines []string
	var keys map[int][]any
	if te, ok := err.(*yaml.TypeError); ok {
		lines = te.Errors
	} else {
		lines = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	for _, l := range lines {
		e := &Error{File: file, Msg: l}
		if m := yamlLineRE.FindStringSubmatch(l); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = m[2]
		}
		var path []any
		if e.Line > 0 && root != nil {
			if keys == nil {
				keys = keysByLine(root)
			}
			path = keys[e.Line]
		}
		if m := unknownFieldRE.FindStringSubmatch(e.Msg); m != nil {
			e.Key = m[1]
			if len(path) > 0 && path[len(path)-1] == m[1] {
				e.Key = KeyString(path...) // sites[0].rotes, not just rotes
			}
			e.Msg = "unknown key; check its spelling and indentation against the config reference in README.md"
		} else {
			e.Key = KeyString(path...)
		}
		out = append(out, e)
	}
	return out
}
