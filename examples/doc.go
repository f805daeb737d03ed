// Package examples holds minimal Parley bots, documentation by example for
// the http_component host (components/webhook): go-bot, a Go program, and
// python-bot, a Python 3 script with only the standard library. Both
// verify the Standard Webhooks signature Parley puts on its requests and
// answer a message with "You said: <body>". See README.md for how to run
// them against a local server.
//
// This package has no code of its own: its tests run the Python bot and
// talk to it as Parley does. It is not a library; import nothing from it.
package examples
