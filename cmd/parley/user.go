package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/parley-im/parley/c2s/sasl"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// userUsage is what `parley user help` prints.
const userUsage = `usage: parley user <command> [-c file] [arguments]

Commands:

	add user@host      add an account; the password is read from a prompt
	                   or from one line of standard input
	passwd user@host   change the password of an account, read the same way
	del user@host      delete an account and everything it owns
	list [host]        list the accounts, of one host or of all, one per line

The host must be a local host of the config. The commands work whether or
not the server is running.
`

// userOperands are the subcommands of `parley user` and the operands
// each takes, as their usage line shows them.
var userOperands = map[string]string{
	"add":    "user@host",
	"passwd": "user@host",
	"del":    "user@host",
	"list":   "[host]",
}

// user runs `parley user`: add, passwd, del and list change and read the
// accounts in the config's database directly, with or without a server
// running on it.
func user(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, userUsage)
		return 2
	}
	sub := args[0]
	switch sub {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, userUsage)
		return 0
	}
	operandsUsage, ok := userOperands[sub]
	if !ok {
		fmt.Fprintf(stderr, "parley user: unknown command %q\n\n%s", sub, userUsage)
		return 2
	}
	fs := newFlagSet("user "+sub, operandsUsage, stderr)
	path := configFlag(fs)
	operands, code, ok := parseFlags(fs, args[1:])
	if !ok {
		return code
	}
	switch {
	case sub == "list" && len(operands) > 1:
		return usageError(fs, "unexpected argument %q", operands[1])
	case sub != "list" && len(operands) == 0:
		return usageError(fs, "missing the account, like alice@localhost")
	case sub != "list" && len(operands) > 1:
		return usageError(fs, "unexpected argument %q: the password is read from standard input, never taken as an argument", operands[1])
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return fail(stderr, "user "+sub, err)
	}
	u := userCmd{cfg: cfg, stdin: stdin, stdout: stdout, stderr: stderr}
	if err := u.run(context.Background(), sub, operands); err != nil {
		return fail(stderr, "user "+sub, err)
	}
	return 0
}

// userCmd is one run of a `parley user` subcommand.
type userCmd struct {
	cfg    *conf.Config
	store  *storage.Store
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run checks the operands of the subcommand sub against the config, opens
// the store and runs sub.
func (u *userCmd) run(ctx context.Context, sub string, operands []string) (err error) {
	if u.cfg.DatabasePath() == storage.Memory {
		return errors.New("the config keeps accounts in memory; user commands need a database file")
	}
	var (
		account xmpp.JID
		host    string
	)
	if sub == "list" {
		if len(operands) == 1 {
			host, err = u.hostOperand(operands[0])
		}
	} else {
		account, err = u.accountOperand(operands[0])
	}
	if err != nil {
		return err
	}
	u.store, err = storage.Open(ctx, u.cfg.DatabasePath())
	if err != nil {
		return err
	}
	defer func() {
		if cerr := u.store.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	switch sub {
	case "add":
		return u.add(ctx, account)
	case "passwd":
		return u.passwd(ctx, account)
	case "del":
		return u.del(ctx, account)
	default:
		return u.list(ctx, host)
	}
}

// add creates the account j with a password read from stdin.
func (u *userCmd) add(ctx context.Context, j xmpp.JID) error {
	exists := fmt.Errorf("%s already exists; use `parley user passwd` to change its password", j)
	// Asking for a password that cannot be used would waste the user's
	// time; CreateAccount still decides, in case another process adds the
	// account meanwhile.
	switch _, err := u.store.Account(ctx, j.Domain(), j.Local()); {
	case err == nil:
		return exists
	case !errors.Is(err, storage.ErrNotFound):
		return err
	}
	sha1Key, sha256Key, err := u.newKeys(j)
	if err != nil {
		return err
	}
	err = u.store.CreateAccount(ctx, storage.Account{
		Host:     j.Domain(),
		Username: j.Local(),
		SHA1:     sha1Key,
		SHA256:   sha256Key,
	})
	if errors.Is(err, storage.ErrExists) {
		return exists
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(u.stdout, "added %s\n", j)
	return nil
}

// passwd replaces the password of the account j with one read from stdin.
func (u *userCmd) passwd(ctx context.Context, j xmpp.JID) error {
	if _, err := u.store.Account(ctx, j.Domain(), j.Local()); err != nil {
		return notFound(j, err)
	}
	sha1Key, sha256Key, err := u.newKeys(j)
	if err != nil {
		return err
	}
	if err := u.store.SetCredentials(ctx, j.Domain(), j.Local(), sha1Key, sha256Key); err != nil {
		return notFound(j, err)
	}
	fmt.Fprintf(u.stdout, "changed the password of %s\n", j)
	return nil
}

// del deletes the account j.
func (u *userCmd) del(ctx context.Context, j xmpp.JID) error {
	if err := u.store.DeleteAccount(ctx, j.Domain(), j.Local()); err != nil {
		return notFound(j, err)
	}
	fmt.Fprintf(u.stdout, "deleted %s\n", j)
	return nil
}

// list prints the accounts of host, or of every host when host is empty,
// one bare JID per line in sorted order.
func (u *userCmd) list(ctx context.Context, host string) error {
	accounts, err := u.store.Accounts(ctx, host)
	if err != nil {
		return err
	}
	jids := make([]string, len(accounts))
	for i, a := range accounts {
		jids[i] = a.Username + "@" + a.Host
	}
	slices.Sort(jids)
	for _, j := range jids {
		fmt.Fprintln(u.stdout, j)
	}
	return nil
}

// newKeys reads a password for j and derives its SCRAM keys with the
// config's iteration count. The password goes no further.
func (u *userCmd) newKeys(j xmpp.JID) (sha1Key, sha256Key storage.SCRAMKey, err error) {
	password, err := readPassword(u.stdin, u.stderr, j.String())
	if err != nil {
		return storage.SCRAMKey{}, storage.SCRAMKey{}, err
	}
	return sasl.NewKeys(password, u.cfg.Auth.SCRAMIterations)
}

// notFound names j in an error of the store that wraps storage.ErrNotFound.
func notFound(j xmpp.JID, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%s: no such account", j)
	}
	return err
}

// accountOperand parses s as the JID of an account: a bare user@host
// whose host is a local host of the config.
func (u *userCmd) accountOperand(s string) (xmpp.JID, error) {
	j, err := xmpp.Parse(s)
	if err != nil {
		return xmpp.JID{}, err
	}
	switch {
	case j.Local() == "":
		return xmpp.JID{}, fmt.Errorf("%q has no user part: an account is user@host, like alice@%s", s, j.Domain())
	case j.Resource() != "":
		return xmpp.JID{}, fmt.Errorf("%q has a resource: an account is a bare JID; write %s", s, j.Bare())
	}
	if err := u.checkLocalHost(j.Domain()); err != nil {
		return xmpp.JID{}, err
	}
	return j, nil
}

// hostOperand parses s as the name of a local host of the config.
func (u *userCmd) hostOperand(s string) (string, error) {
	j, err := xmpp.Parse(s)
	if err != nil {
		return "", err
	}
	if j.Local() != "" || j.Resource() != "" {
		return "", fmt.Errorf("%q is not a host name; write %s", s, j.Domain())
	}
	if err := u.checkLocalHost(j.Domain()); err != nil {
		return "", err
	}
	return j.Domain(), nil
}

// checkLocalHost returns an error naming the local hosts of the config
// unless domain is one of them.
func (u *userCmd) checkLocalHost(domain string) error {
	h, ok := u.cfg.Host(domain)
	if ok && h.Type == local.HostLocal {
		return nil
	}
	problem := "is not a host of " + configName(u.cfg)
	if ok {
		problem = fmt.Sprintf("is a %s host in %s, which has no accounts", h.Type, configName(u.cfg))
	}
	var locals []string
	for _, h := range u.cfg.Hosts {
		if h.Type == local.HostLocal {
			locals = append(locals, h.Name)
		}
	}
	if len(locals) == 0 {
		return fmt.Errorf("%s %s, which has no local hosts", domain, problem)
	}
	return fmt.Errorf("%s %s; its local hosts are %s", domain, problem, strings.Join(locals, ", "))
}
