package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parley-im/parley/c2s"
	"github.com/parley-im/parley/c2s/sasl"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// registrar serves in-band registration (XEP-0077) for the c2s streams.
type registrar Server

// Mode returns the host's registration mode: closed for a host without
// accounts.
func (r *registrar) Mode(host string) string {
	if h, ok := r.sessionHosts[host]; ok {
		return h.RegistrationMode()
	}
	return c2s.RegistrationClosed
}

// CheckInvite reports whether token is a usable invite for host.
func (r *registrar) CheckInvite(ctx context.Context, host, token string) error {
	if err := r.store.InviteValid(ctx, host, token, time.Now()); err != nil {
		return inviteError(err)
	}
	return nil
}

func inviteError(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return xmpp.NewStanzaError(xmpp.NotAllowed, "the invitation is unknown, used or expired")
	}
	return err
}

// Register creates an account; an invite token is used up first, so that
// one token makes at most one account.
func (r *registrar) Register(ctx context.Context, host, username, password, token string) error {
	local, err := xmpp.NormalizeLocal(username)
	if err != nil {
		return xmpp.NewStanzaError(xmpp.NotAcceptable, "the username is not valid: "+err.Error())
	}
	if _, err := r.store.Account(ctx, host, local); err == nil {
		return xmpp.NewStanzaError(xmpp.Conflict, "the username is taken")
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	sha1Key, sha256Key, err := sasl.NewKeys(password, r.cfg.Auth.SCRAMIterations)
	if err != nil {
		return xmpp.NewStanzaError(xmpp.NotAcceptable, "the password is not valid: "+err.Error())
	}
	if token != "" {
		if err := r.store.UseInvite(ctx, host, token, time.Now()); err != nil {
			return inviteError(err)
		}
	}
	err = r.store.CreateAccount(ctx, storage.Account{Host: host, Username: local, SHA1: sha1Key, SHA256: sha256Key})
	if errors.Is(err, storage.ErrExists) {
		return xmpp.NewStanzaError(xmpp.Conflict, "the username is taken")
	}
	if err != nil {
		return fmt.Errorf("server: register %s@%s: %w", local, host, err)
	}
	return nil
}
