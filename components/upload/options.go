package upload

import (
	"net/url"
	"strings"
	"time"

	"github.com/parley-im/parley/conf"
)

// HostType is the name of this package's host type in a [[host]] table.
const HostType = "upload"

// The defaults of an upload host's options.
const (
	// defaultMaxFileSize is larger than Prosody's 10 MiB: phones send
	// videos, and a homelab's disk is the operator's.
	defaultMaxFileSize = 100 * conf.MiB
	// defaultQuota bounds what one user keeps stored at once: with
	// files kept a week, about a week's uploads.
	defaultQuota = 1 * conf.GiB
	// defaultSlotLifetime is how long a PUT URL may be started after the
	// slot was given. XEP-0363 §7 recommends about 60s; a phone that
	// wakes its radio or asks the user first needs more, and Prosody
	// gives 10 minutes.
	defaultSlotLifetime = 5 * time.Minute
	// defaultExpiresAfter is Prosody's mod_http_file_share default.
	defaultExpiresAfter = 7 * 24 * time.Hour
	// minSecret is the shortest secret option accepted: the HMAC key
	// of every PUT URL.
	minSecret = 32
)

// Options are the options of an upload host: the keys of its [[host]]
// table besides name, type, tls_cert and tls_key.
type Options struct {
	// PublicURL is the base URL clients are given: the slots' URLs are
	// <public_url>/upload/<slot>/<file name>, and the URL must reach the
	// HTTP listener's root (directly or through a proxy). Default
	// http://<the host's name>:<the port of the first [http] listen>.
	// A deployment needs HTTPS here (XEP-0363 §4 requires it).
	PublicURL string `toml:"public_url"`
	// Secret is the HMAC key of the PUT URLs, at least 32 characters.
	// Default: 32 random bytes generated once and kept in
	// data_dir/upload_secret.
	Secret string `toml:"secret"`
	// AllowedHosts are the domains whose users may request slots.
	// Default: every local host of this server.
	AllowedHosts []string `toml:"allowed_hosts"`
	// MaxFileSize is the largest file a slot is given for. Default
	// 100MiB.
	MaxFileSize conf.Size `toml:"max_file_size"`
	// QuotaPerUser bounds the bytes one user has stored at once: the
	// files not yet expired and the slots given in the last
	// slot_lifetime and not yet filled. Default 1GiB, at least
	// max_file_size.
	QuotaPerUser conf.Size `toml:"quota_per_user"`
	// SlotLifetime is how long after the slot request its PUT may start.
	// Default 5m, 10s to 1h.
	SlotLifetime conf.Duration `toml:"slot_lifetime"`
	// ExpiresAfter is how long a file is kept after its upload. Default
	// 168h (a week), at least 1m.
	ExpiresAfter conf.Duration `toml:"expires_after"`
}

// OptionsOf returns the options of the upload host h, setting empty ones
// when h has none (a config built in Go).
func OptionsOf(h *conf.Host) *Options {
	if h.Options == nil {
		h.Options = &Options{}
	}
	o, _ := h.Options.(*Options)
	return o
}

// checkOptions checks an upload host's options and fills in their
// defaults.
func checkOptions(c *conf.HostCheck, o *Options) {
	if o.PublicURL != "" {
		u, err := url.Parse(o.PublicURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			c.Errorf("public_url", `%q is not an absolute http or https URL; write it like "https://upload.example.com:5281"`,
				o.PublicURL)
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			c.Errorf("public_url", "%q has a query, a fragment or a user; the slots' paths are appended to it", o.PublicURL)
		}
	}
	if o.Secret != "" && len(o.Secret) < minSecret {
		// Whoever guesses the key signs PUT URLs for any slot.
		c.Errorf("secret", "the secret is %d characters long; use %d or more random ones, "+
			"like the output of `openssl rand -hex 32`, or leave it out for a generated one", len(o.Secret), minSecret)
	}
	for i, d := range o.AllowedHosts {
		if d == "" || strings.ContainsAny(d, "@/ ") {
			c.Errorf(conf.IndexKey("allowed_hosts", i), "%q is not a domain; list the domains whose users may upload", d)
		}
	}
	conf.AtLeast(c, "max_file_size", &o.MaxFileSize, defaultMaxFileSize, 1, "a slot holds at least one byte")
	conf.AtLeast(c, "quota_per_user", &o.QuotaPerUser, max(defaultQuota, o.MaxFileSize), o.MaxFileSize,
		"max_file_size: a user must be able to upload one file that size")
	if o.SlotLifetime.Duration == 0 && !c.IsSet("slot_lifetime") {
		o.SlotLifetime.Duration = defaultSlotLifetime
	}
	if d := o.SlotLifetime.Duration; d < 10*time.Second || d > time.Hour {
		c.Errorf("slot_lifetime", `%v is not between 10s and 1h; a PUT URL should be short-lived (XEP-0363 §7), `+
			`like "5m"`, d)
	}
	if o.ExpiresAfter.Duration == 0 && !c.IsSet("expires_after") {
		o.ExpiresAfter.Duration = defaultExpiresAfter
	}
	if d := o.ExpiresAfter.Duration; d < time.Minute {
		c.Errorf("expires_after", `%v is less than 1m; files are kept at least a minute, like "168h" for a week`, d)
	}
}
