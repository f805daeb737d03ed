package main

import (
	"fmt"
	"io"
)

// check runs `parley check`: it loads and validates a config and prints
// either one line saying it is fine or every problem, one per line.
func check(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", "", stderr)
	path := configFlag(fs)
	if code, ok := parseNone(fs, args); !ok {
		return code
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return fail(stderr, "check", err)
	}
	hosts := "hosts"
	if len(cfg.Hosts) == 1 {
		hosts = "host"
	}
	fmt.Fprintf(stdout, "ok: %s (%d %s)\n", configName(cfg), len(cfg.Hosts), hosts)
	return 0
}
