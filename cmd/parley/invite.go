package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parley-im/parley/server/local"
	"github.com/parley-im/parley/storage"
)

// invite runs `parley invite [-c file] [-ttl d] host`: it makes a single-use
// token for in-band registration on a host with registration = "invite",
// and prints it with the XEP-0401 URI a client can open.
func invite(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("invite", "host", stderr)
	path := configFlag(fs)
	ttl := fs.Duration("ttl", 7*24*time.Hour, "how long the invitation is valid")
	operands, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(operands) != 1 {
		return usageError(fs, "name one local host, like localhost")
	}
	if *ttl <= 0 {
		return usageError(fs, "-ttl must be positive, like 24h")
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return fail(stderr, "invite", err)
	}
	u := userCmd{cfg: cfg, stdout: stdout, stderr: stderr}
	host, err := u.hostOperand(operands[0])
	if err != nil {
		return fail(stderr, "invite", err)
	}
	h, _ := cfg.Host(host)
	if o := local.LocalOptionsOf(h); o == nil || o.Registration != local.RegistrationInvite {
		var mode string
		if o != nil {
			mode = o.Registration
		}
		return fail(stderr, "invite", fmt.Errorf("%s has registration = %q; set registration = %q on it for invitations to work",
			host, mode, local.RegistrationInvite))
	}
	if cfg.DatabasePath() == storage.Memory {
		return fail(stderr, "invite", errors.New("the config keeps everything in memory; invitations need a database file"))
	}
	var b [18]byte
	_, _ = rand.Read(b[:])
	token := base64.RawURLEncoding.EncodeToString(b[:])
	ctx := context.Background()
	store, err := storage.Open(ctx, cfg.DatabasePath())
	if err != nil {
		return fail(stderr, "invite", err)
	}
	defer store.Close()
	expires := time.Now().Add(*ttl)
	if err := store.CreateInvite(ctx, host, token, expires); err != nil {
		return fail(stderr, "invite", err)
	}
	fmt.Fprintf(stdout, "token:   %s\nuri:     xmpp:%s?register;preauth=%s\nexpires: %s\n", token, host, token, expires.UTC().Format(time.RFC3339))
	return 0
}
