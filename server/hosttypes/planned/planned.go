// Package planned registers the options of the host types that are
// planned but not built yet, upload and component, so that a config
// naming them is checked (and `parley check` accepts it) as before;
// server.New refuses to run them, listing the types it runs. Each moves
// to its own package when it is built. Register registers them; package
// std calls it.
package planned

import "github.com/parley-im/parley/conf"

// Names of the planned host types.
const (
	// Upload is an HTTP file upload service (XEP-0363).
	Upload = "upload"
	// Component is an external component connecting with a secret
	// (XEP-0114).
	Component = "component"
)

// UploadOptions are the options of an upload host: none yet.
type UploadOptions struct{}

// ComponentOptions are the options of a component host.
type ComponentOptions struct {
	// Secret authenticates the external component. Required.
	Secret string `toml:"secret"`
}

// Register registers the planned types. Package std calls it after the
// built types are registered (package server's local first, then
// http_component), so that the types are listed in that order whatever
// order packages are initialized in.
func Register() {
	conf.RegisterHostType(Upload, conf.HostType[UploadOptions]{})
	conf.RegisterHostType(Component, conf.HostType[ComponentOptions]{Check: func(c *conf.HostCheck, o *ComponentOptions) {
		if o.Secret == "" {
			c.Missing("secret", `secret is required for type = "component": the password the component connects with`)
		}
	}})
}
