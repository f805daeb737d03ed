package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	good, _ := testConfig{}.write(t)
	twoHosts, _ := testConfig{hosts: "[[host]]\nname = \"example.com\"\n[[host]]\nname = \"example.net\"\n"}.write(t)
	unknownKey, _ := testConfig{top: `colour = "blue"`}.write(t)
	missing := filepath.Join(t.TempDir(), "missing.toml")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // all of stdout
		wantStderr string // a substring of stderr
	}{
		{name: "a good config is ok", args: []string{"-c", good}, wantCode: 0, wantStdout: "ok: " + good + " (1 host)\n"},
		{name: "a config with two hosts counts them", args: []string{"-c", twoHosts}, wantCode: 0, wantStdout: "ok: " + twoHosts + " (2 hosts)\n"},
		{name: "the built-in config is ok", args: nil, wantCode: 0, wantStdout: "ok: the built-in config (2 hosts)\n"},
		{name: "an unknown key is reported with its file and line", args: []string{"-c", unknownKey}, wantCode: 1, wantStderr: unknownKey + ":2: colour: "},
		{name: "a missing file is an error", args: []string{"-c", missing}, wantCode: 1, wantStderr: "parley check: open " + missing},
		{name: "an argument is a usage error", args: []string{good}, wantCode: 2, wantStderr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runParley(t, "", append([]string{"check"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if stdout != tt.wantStdout {
				t.Errorf("stdout %q, want %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
		})
	}
}
