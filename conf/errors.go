package conf

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a config: where it is and what to write instead.
type Error struct {
	// File is the config file, empty for a config built in Go.
	File string
	// Line is the line of the problem, from 1; 0 when unknown, as in a
	// config built in Go.
	Line int
	// Key is the key the problem is about, as a path: "log_level",
	// "c2s.listen", "host[1].type". For a key that is missing it names
	// the table it is missing from, like "host[1] (bots.example.com)".
	// It may be empty, as for some TOML syntax errors.
	Key string
	// Msg says what is wrong and what is allowed.
	Msg string
}

// Error returns "file:line: key: msg", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		if e.File == "" {
			b.WriteString("line ")
		}
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(":")
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are all the problems found in one config, sorted by line. [Parse],
// [Load] and [Config.Validate] return them as their error; use errors.As to
// get them back.
type Errors []*Error

// Error returns one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems as errors, so that errors.As finds an *Error.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// sort orders the problems by line, keeping the order of those on the same
// line (and of those without a line).
func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
}
