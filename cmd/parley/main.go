package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server"
	// The host types and modules this binary runs.
	_ "github.com/parley-im/parley/server/std"
)

// usage is what `parley help` prints.
const usage = `Parley is an XMPP server.

Usage:

	parley <command> [arguments]

Commands:

	serve [-c file]              run the server until SIGINT or SIGTERM
	check [-c file]              check a config and report every problem with its line
	user add [-c file] jid       add an account; the password is read from a prompt
	                             or from one line of standard input
	user passwd [-c file] jid    change the password of an account, read the same way
	user del [-c file] jid       delete an account and everything it owns
	user list [-c file] [host]   list the accounts, of one host or of all, one per line
	invite [-c file] [-ttl d] host
	                             make a single-use registration token for a host
	                             with registration = "invite"
	version                      print the versions of Parley and Go
	help                         print this help

-c names the config file. Without it a command uses the config built into
parley: the domain localhost, served on loopback addresses, with its data in
./data.
`

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// run is main without the process: it runs the command in args, with
// stdin, stdout and stderr for the standard streams, and returns the exit
// code: 0 for success, 1 when the command failed, 2 for a usage error.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdin, stdout, stderr)
}

// runContext is run with a context: `parley serve` shuts the server down
// when ctx ends, as it does on SIGINT or SIGTERM. Tests use it to stop a
// server without sending signals.
func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "user":
		return user(args[1:], stdin, stdout, stderr)
	case "invite":
		return invite(args[1:], stdout, stderr)
	case "version":
		return version(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "parley: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// version runs `parley version`.
func version(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "", stderr)
	if code, ok := parseNone(fs, args); !ok {
		return code
	}
	fmt.Fprintf(stdout, "parley %s %s %s/%s\n", server.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}

// newFlagSet returns the flags of the command name ("serve", "user add"),
// which reports its errors and usage on stderr. operands describes the
// arguments that follow the flags, for the usage line.
func newFlagSet(name, operands string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("parley "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		line := "usage: parley " + name
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			line += " [flags]"
		}
		if operands != "" {
			line += " " + operands
		}
		fmt.Fprintln(stderr, line)
		fs.PrintDefaults()
	}
	return fs
}

// configFlag adds -c to fs: the config file, empty for the built-in one.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("c", "", "the config `file` (default: the config built into parley)")
}

// parseFlags parses args with fs and returns the operands. Flags may also
// follow operands, as in `parley user add alice@localhost -c parley.toml`;
// "--" ends the flags. When parsing fails it returns ok false and the exit
// code: 0 for -h, which has printed the usage, and 2 for a usage error,
// which has printed the error and the usage.
func parseFlags(fs *flag.FlagSet, args []string) (operands []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return operands, 0, true
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(operands, rest...), 0, true
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}

// parseNone is parseFlags for a command that takes no operands: one is a
// usage error.
func parseNone(fs *flag.FlagSet, args []string) (code int, ok bool) {
	operands, code, ok := parseFlags(fs, args)
	if !ok {
		return code, false
	}
	if len(operands) > 0 {
		return usageError(fs, "unexpected argument %q", operands[0]), false
	}
	return 0, true
}

// usageError prints a usage error of the command of fs and its usage, and
// returns the exit code 2.
func usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return 2
}

// loadConfig reads and validates the config file at path, or returns the
// built-in config when path is empty.
func loadConfig(path string) (*conf.Config, error) {
	if path == "" {
		return conf.Default(), nil
	}
	return conf.Load(path)
}

// configName is how messages name the file cfg was read from.
func configName(cfg *conf.Config) string {
	if cfg.File == "" {
		return "the built-in config"
	}
	return cfg.File
}

// fail prints err on stderr for the command name and returns the exit code
// 1. Config errors are printed as conf formats them, one per line, each
// starting with its file and line, so editors can jump to them.
func fail(stderr io.Writer, name string, err error) int {
	var ce conf.Errors
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, ce.Error())
	} else {
		fmt.Fprintf(stderr, "parley %s: %v\n", name, err)
	}
	return 1
}
