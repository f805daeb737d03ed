package conf

// What the tests of package conf_test (which import the host types, and
// so cannot be in package conf) need of its internals.

// KeyPaths returns the paths of the keys and tables of a TOML document.
func KeyPaths(data []byte) []string {
	var out []string
	for p := range indexLines(data).lines {
		out = append(out, p)
	}
	return out
}

// ReIndex matches the array indexes of a path.
var ReIndex = reIndex
