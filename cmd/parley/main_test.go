package main

import (
	"runtime"
	"strings"
	"testing"

	"github.com/parley-im/parley/server"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // a substring of stdout
		wantStderr string // a substring of stderr
	}{
		{name: "no command prints the usage on stderr", args: nil, wantCode: 2, wantStderr: "Usage:"},
		{name: "help prints the usage", args: []string{"help"}, wantCode: 0, wantStdout: "Usage:"},
		{name: "-h prints the usage", args: []string{"-h"}, wantCode: 0, wantStdout: "user add [-c file] jid"},
		{name: "an unknown command prints the usage on stderr", args: []string{"frob"}, wantCode: 2, wantStderr: "unknown command \"frob\"\n\nParley is an XMPP server."},
		{name: "version prints the server version", args: []string{"version"}, wantCode: 0,
			wantStdout: "parley " + server.Version + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"},
		{name: "version takes no arguments", args: []string{"version", "now"}, wantCode: 2, wantStderr: "unexpected argument \"now\""},
		{name: "serve -h prints its flags", args: []string{"serve", "-h"}, wantCode: 0, wantStderr: "-c file"},
		{name: "an unknown flag is a usage error", args: []string{"check", "-x"}, wantCode: 2, wantStderr: "usage: parley check [flags]"},
		{name: "user with no command prints its usage on stderr", args: []string{"user"}, wantCode: 2, wantStderr: "usage: parley user <command>"},
		{name: "user help prints its usage", args: []string{"user", "help"}, wantCode: 0, wantStdout: "passwd user@host"},
		{name: "an unknown user command is a usage error", args: []string{"user", "frob"}, wantCode: 2, wantStderr: "unknown command \"frob\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runParley(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
		})
	}
}
