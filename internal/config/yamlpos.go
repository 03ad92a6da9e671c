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

// keyString renders a path as sites[0].routes[2].regex.
func keyString(path ...any) string {
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

var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)
var unknownFieldRE = regexp.MustCompile(`field (\S+) not found in type (\S+)`)

// decodeErrors turns the yaml package's errors into Errors with file and line.
func decodeErrors(file string, err error) Errors {
	var out Errors
	var lines []string
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
		if m := unknownFieldRE.FindStringSubmatch(e.Msg); m != nil {
			e.Key = m[1]
			e.Msg = "unknown key; check its spelling and indentation against the config reference in README.md"
		}
		out = append(out, e)
	}
	return out
}
