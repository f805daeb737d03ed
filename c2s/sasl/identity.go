package sasl

import (
	"strings"

	"github.com/parley-im/parley/xmpp"
)

// checkAuthzid accepts an empty authorization identity, or the bare JID of
// username on the stream's host. Acting for anyone else is not something
// a c2s stream does.
func (c Config) checkAuthzid(authzid, username string) error {
	if authzid == "" {
		return nil
	}
	local, domain, ok := strings.Cut(authzid, "@")
	if !ok || c.Host == "" || !strings.EqualFold(domain, c.Host) {
		return fail(condInvalidAuthzid, textAuthzid)
	}
	if n, err := xmpp.NormalizeLocal(local); err != nil || n != username {
		return fail(condInvalidAuthzid, textAuthzid)
	}
	return nil
}
