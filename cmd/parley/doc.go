// Command parley runs Parley, an XMPP server, and manages what it keeps:
//
//	parley serve [-c file] [-pprof addr] run the server until SIGINT or SIGTERM
//	                                    (-pprof: Go's profiles on a loopback address)
//	parley check [-c file]              check a config and report every problem with its line
//	parley user add [-c file] jid       add an account
//	parley user passwd [-c file] jid    change the password of an account
//	parley user del [-c file] jid       delete an account and everything it owns
//	parley user list [-c file] [host]   list the accounts, one JID per line
//	parley version                      print the versions of Parley and Go
//
// Without -c a command uses the config built into the binary, which serves
// the domain localhost on loopback addresses and keeps its data in ./data.
//
// The user commands work whether or not the server is running: they open the
// same SQLite database, whose WAL mode lets both write. add and passwd read
// the password from a prompt without echo when standard input is a terminal,
// and otherwise read exactly one line from standard input; a password is
// never taken as an argument, so it does not end up in shell histories or
// process lists.
//
// This command is the only place in Parley that parses flags and waits for
// signals; everything it runs is in the server package, so the same server
// runs inside a test.
package main
