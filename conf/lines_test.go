package conf

import "testing"

func TestIndexLines(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want map[string]int
	}{
		{
			name: "top-level keys and tables have their lines",
			src:  "# comment\na = 1\n\n[c2s]\nlisten = []\n",
			want: map[string]int{"a": 2, "c2s": 4, "c2s.listen": 5},
		},
		{
			name: "each table of an array gets its index",
			src:  "[[host]]\nname = \"a\"\n[[host]]\nname = \"b\"\n",
			want: map[string]int{"host[0]": 1, "host[0].name": 2, "host[1]": 3, "host[1].name": 4},
		},
		{
			name: "a sub-table belongs to the last table of the array",
			src:  "[[host]]\n[[host]]\n[host.headers]\nA = \"b\"\n",
			want: map[string]int{"host[1].headers": 3, "host[1].headers.A": 4},
		},
		{
			name: "list elements on their own lines keep them",
			src:  "listen = [\n  \"a\", # one\n  \"b\",\n]\nnext = 1\n",
			want: map[string]int{"listen": 1, "listen[0]": 2, "listen[1]": 3, "next": 5},
		},
		{
			name: "a multi-line string hides what looks like keys",
			src:  "a = \"\"\"\nb = 1\n[c]\n\"\"\"\nd = '''\ne = 2'''\nf = 3\n",
			want: map[string]int{"a": 1, "d": 5, "f": 7},
		},
		{
			name: "quotes and escapes in strings do not end them early",
			src:  "a = \"x\\\"]#\"\nb = 'c:\\dir'\nc = \"\"\"q\"\"\"\"\"\nd = 1\n",
			want: map[string]int{"a": 1, "b": 2, "c": 3, "d": 4},
		},
		{
			name: "inline tables record their keys, quoted or not",
			src:  "h = { A = \"1\", \"X.Y\" = \"2\",\n  'z' = 3 }\n",
			want: map[string]int{"h": 1, "h.A": 1, `h."X.Y"`: 1, "h.z": 2},
		},
		{
			name: "dotted keys record every level",
			src:  "[limits]\nx.y = 1\n",
			want: map[string]int{"limits.x": 2, "limits.x.y": 2},
		},
		{
			name: "an inline array of tables is indexed like [[ ]]",
			src:  "host = [\n { name = \"a\" },\n { name = \"b\" },\n]\n",
			want: map[string]int{"host[0].name": 2, "host[1].name": 3},
		},
		{
			name: "a byte order mark and CRLF line ends are fine",
			src:  "\ufeffa = 1\r\nb = 2\r\n",
			want: map[string]int{"a": 1, "b": 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := indexLines([]byte(tt.src))
			for path, line := range tt.want {
				if got := x.lines[path]; got != line {
					t.Errorf("line of %s = %d; want %d (all: %v)", path, got, line, x.lines)
				}
			}
		})
	}
}

func TestLineFallsBackToTheEnclosingTable(t *testing.T) {
	x := indexLines([]byte("a = 1\n[[host]]\nname = \"x\"\n[limits]\n"))
	tests := []struct {
		name string
		path string
		want int
	}{
		{name: "a key that is set has its own line", path: "host[0].name", want: 3},
		{name: "a key left out has the line of its table", path: "host[0].post_url", want: 2},
		{name: "an element left out has the line of its table", path: "limits.burst", want: 4},
		{name: "a table left out has no line", path: "c2s.listen[0]", want: 0},
		{name: "a quoted key with a dot has its table's line", path: `host[0].headers."X.Y"`, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := x.line(tt.path); got != tt.want {
				t.Errorf("line(%s) = %d; want %d", tt.path, got, tt.want)
			}
		})
	}
}
