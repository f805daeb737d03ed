package conf

import (
	"strconv"
	"strings"
)

// BurntSushi/toml keeps the position of each key, but not for public use,
// and keeps only the last one for keys in an array of tables, so every
// host[i].name would point at the last host. lineIndex finds the lines
// itself, with a small scanner run only on input the TOML parser has already
// accepted.

// lineIndex maps the path of every key and table in a TOML document to the
// line it is defined on. Paths are written as in [Error.Key]: tables of an
// array get their index ("host[1].name"), and so do elements of an inline
// array ("c2s.listen[0]").
type lineIndex struct {
	lines map[string]int
	count int // lines in the document
}

// line returns the line of path or, when path is not in the document, of
// the closest table that holds it; 0 when none does.
func (x *lineIndex) line(path string) int {
	for path != "" {
		if l, ok := x.lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath removes the last key or index from a path.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if strings.HasSuffix(path, `"`) {
		if i := strings.LastIndex(path[:len(path)-1], `."`); i >= 0 {
			return path[:i]
		}
		return ""
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// joinPath appends a key to a path, quoting it when it is not a bare key.
func joinPath(path, key string) string {
	if !isBareKey(key) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// indexPath appends an array index to a path.
func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// indexLines scans a valid TOML document for the line of each key.
func indexLines(data []byte) *lineIndex {
	s := &scanner{
		data:   string(data),
		line:   1,
		x:      &lineIndex{lines: map[string]int{}},
		arrays: map[string]int{},
	}
	s.data = strings.TrimPrefix(s.data, "\ufeff")
	s.document()
	s.x.count = strings.Count(s.data, "\n") + 1
	if strings.HasSuffix(s.data, "\n") {
		s.x.count--
	}
	return s.x
}

type scanner struct {
	data   string
	pos    int
	line   int
	x      *lineIndex
	table  string         // path of the current table
	arrays map[string]int // path of each array of tables → tables so far
}

func (s *scanner) eof() bool { return s.pos >= len(s.data) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.data[s.pos]
}

func (s *scanner) next() byte {
	c := s.peek()
	s.pos++
	if c == '\n' {
		s.line++
	}
	return c
}

func (s *scanner) record(path string) {
	if _, ok := s.x.lines[path]; !ok {
		s.x.lines[path] = s.line
	}
}

// space skips spaces and tabs, and also newlines and comments when lines is
// true.
func (s *scanner) space(lines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.next()
		case lines && c == '\n':
			s.next()
		case lines && c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.next()
			}
		default:
			return
		}
	}
}

func (s *scanner) document() {
	for {
		s.space(true)
		if s.eof() {
			return
		}
		start := s.pos
		if s.peek() == '[' {
			s.header()
		} else {
			s.keyValue(s.table)
		}
		// The rest of the line is at most a comment.
		s.space(false)
		if s.peek() == '#' {
			s.space(true)
		}
		if s.pos == start {
			s.next() // never loop on input this scanner does not expect
		}
	}
}

// header reads [table] or [[array.of.tables]].
func (s *scanner) header() {
	s.next()
	array := s.peek() == '['
	if array {
		s.next()
	}
	keys := s.key()
	path := ""
	for i, k := range keys {
		path = joinPath(path, k)
		last := i == len(keys)-1
		if last && array {
			s.arrays[path]++
			path = indexPath(path, s.arrays[path]-1)
		} else if n, ok := s.arrays[path]; ok {
			path = indexPath(path, n-1)
		}
		if last {
			s.record(path)
		}
	}
	s.space(false)
	for s.peek() == ']' {
		s.next()
	}
	s.table = path
}

// keyValue reads key = value, recording the key under table.
func (s *scanner) keyValue(table string) {
	path := table
	for _, k := range s.key() {
		path = joinPath(path, k)
		s.record(path)
	}
	s.space(false)
	if s.peek() == '=' {
		s.next()
	}
	s.space(false)
	s.value(path)
}

// key reads a dotted key.
func (s *scanner) key() []string {
	var keys []string
	for {
		s.space(false)
		switch s.peek() {
		case '"':
			raw := s.str()
			k, err := strconv.Unquote(raw)
			if err != nil {
				k = strings.Trim(raw, `"`)
			}
			keys = append(keys, k)
		case '\'':
			keys = append(keys, strings.Trim(s.str(), "'"))
		default:
			start := s.pos
			for !s.eof() && isBareKey(s.data[s.pos:s.pos+1]) {
				s.next()
			}
			if s.pos == start {
				return keys
			}
			keys = append(keys, s.data[start:s.pos])
		}
		s.space(false)
		if s.peek() != '.' {
			return keys
		}
		s.next()
	}
}

// value reads one value, recording the keys of inline tables and the
// elements of arrays under path.
func (s *scanner) value(path string) {
	switch s.peek() {
	case '"', '\'':
		s.str()
	case '[':
		s.next()
		for i := 0; ; i++ {
			s.space(true)
			if s.eof() || s.peek() == ']' {
				break
			}
			elem := indexPath(path, i)
			s.record(elem)
			start := s.pos
			s.value(elem)
			s.space(true)
			if s.peek() == ',' {
				s.next()
			} else if s.pos == start {
				break
			}
		}
		if s.peek() == ']' {
			s.next()
		}
	case '{':
		s.next()
		for {
			s.space(true)
			if s.eof() || s.peek() == '}' {
				break
			}
			start := s.pos
			s.keyValue(path)
			s.space(true)
			if s.peek() == ',' {
				s.next()
			} else if s.pos == start {
				break
			}
		}
		if s.peek() == '}' {
			s.next()
		}
	default: // number, boolean, date: up to the next delimiter
		for !s.eof() && !strings.ContainsRune(",]}#\n", rune(s.peek())) {
			s.next()
		}
	}
}

// str reads a string of any of the four kinds and returns it as written.
func (s *scanner) str() string {
	start := s.pos
	q := s.peek()
	multi := strings.HasPrefix(s.data[s.pos:], strings.Repeat(string(q), 3))
	if multi {
		s.pos += 3
	} else {
		s.next()
	}
	for !s.eof() {
		c := s.next()
		switch {
		case c == '\\' && q == '"':
			s.next()
		case c == '\n' && !multi:
			return s.data[start:s.pos]
		case c == q && !multi:
			return s.data[start:s.pos]
		case c == q && strings.HasPrefix(s.data[s.pos:], string([]byte{q, q})):
			s.pos += 2
			// A closing delimiter may be preceded by up to two quotes
			// that belong to the string: """a""""" ends at the last.
			for i := 0; i < 2 && s.peek() == q; i++ {
				s.pos++
			}
			return s.data[start:s.pos]
		}
	}
	return s.data[start:s.pos]
}
