package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testConfig describes a config file for a test. Its data_dir is a new
// temporary directory, it listens on free loopback ports and keeps SCRAM
// iterations at the minimum so that tests run fast.
type testConfig struct {
	top   string // top-level keys, after data_dir (on line 2)
	c2s   string // the STARTTLS listen address; "127.0.0.1:0" when empty
	hosts string // [[host]] tables; example.com alone when empty
}

// write writes the config to a file in a temporary directory and returns
// the file and the data directory.
func (c testConfig) write(t *testing.T) (path, dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	listen := c.c2s
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	hosts := c.hosts
	if hosts == "" {
		hosts = "[[host]]\nname = \"example.com\"\n"
	}
	text := fmt.Sprintf(`data_dir = %q
%s
[c2s]
listen = [%q]
direct_tls = ["127.0.0.1:0"]

[auth]
scram_iterations = 4096

%s`, dataDir, c.top, listen, hosts)
	path = filepath.Join(t.TempDir(), "parley.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, dataDir
}

// runParley runs parley with args, stdin as its standard input, and
// returns its exit code and what it wrote.
func runParley(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}
