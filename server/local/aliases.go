package local

import "github.com/parley-im/parley/server"

// Session is a bound client session, as the router knows it.
type Session = server.Session
