package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/parley-im/parley/components/webhook"
	"github.com/parley-im/parley/conf"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/server/local"
)

// shutdownTimeout is how long serve waits for sessions to end after it is
// told to stop.
const shutdownTimeout = 10 * time.Second

// serve runs `parley serve`: it starts the server of the config, logs where
// it listens and, for a local host without accounts, how to add one (see
// firstSteps), and runs it until ctx ends or SIGINT or SIGTERM arrives; then
// it shuts the server down, waiting at most shutdownTimeout. Logs go to
// stderr as slog text, at the config's log_level.
func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fs := newFlagSet("serve", "", stderr)
	path := configFlag(fs)
	pprofAddr := fs.String("pprof", "", "serve Go's `pprof` profiles on this loopback address (for measuring; off by default)")
	if code, ok := parseNone(fs, args); !ok {
		return code
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return fail(stderr, "serve", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fail(stderr, "serve", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(cfg, server.WithLogger(log))
	if err != nil {
		return fail(stderr, "serve", err)
	}
	if err := srv.Start(ctx); err != nil {
		// Start listens on nothing when it fails, but New opened the store.
		if cerr := srv.Close(); cerr != nil {
			fmt.Fprintf(stderr, "parley serve: closing after a failed start: %v\n", cerr)
		}
		return fail(stderr, "serve", err)
	}
	if *pprofAddr != "" {
		addr, err := servePprof(ctx, *pprofAddr)
		if err != nil {
			srv.Close()
			return fail(stderr, "serve", err)
		}
		log.Info("parley: pprof", "addr", addr)
	}
	hosts := make([]string, len(cfg.Hosts))
	for i, h := range cfg.Hosts {
		hosts[i] = h.Name
	}
	log.Info("parley: listening",
		"version", server.Version,
		"config", configName(cfg),
		"hosts", strings.Join(hosts, ","),
		"c2s", joinAddrs(srv.C2SAddrs()),
		"direct_tls", joinAddrs(srv.DirectTLSAddrs()))
	firstSteps(log, cfg, srv, *path)

	<-ctx.Done()
	// From here on a second SIGINT kills the process, for when shutting
	// down hangs.
	stop()
	log.Info("parley: shutting down", "reason", context.Cause(ctx), "timeout", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fail(stderr, "serve", err)
	}
	return 0
}

// demoEchoPath is where Parley's HTTP listener serves the demo echo bot's
// webhook (server/http.go).
const demoEchoPath = "/demo/echo"

// firstSteps logs, for each local host without accounts, one line with the
// next step: the command that adds an account (run as serve was, with its
// config) and, when the config has the demo echo bot, where to find it. It
// is for whoever just ran `make run` and does not know what comes next; a
// server with accounts logs nothing.
func firstSteps(log *slog.Logger, cfg *conf.Config, srv *server.Server, configPath string) {
	// Not serve's context: a stop that comes now should not cut the
	// startup log short. The lookups read no rows.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := progName()
	if configPath != "" {
		// `user add` must open the same store as this server.
		cmd += " -c " + shellQuote(configPath)
	}
	echo := demoEchoHost(cfg, srv.HTTPAddrs())
	for _, h := range cfg.Hosts {
		if h.Type != local.HostLocal {
			continue
		}
		has, err := srv.Store().HasAccounts(ctx, h.Name)
		if err != nil {
			log.Warn("parley: cannot tell whether there are accounts", "host", h.Name, "err", err)
			continue
		}
		if has {
			continue
		}
		msg := fmt.Sprintf("parley: %s has no accounts yet; add one with `%s user add alice@%s`, then log in as alice@%s with any XMPP client",
			h.Name, cmd, h.Name, h.Name)
		if echo != "" {
			msg += fmt.Sprintf(" and send a message to %s, a demo bot that answers with what you wrote", echo)
		}
		log.Info(msg)
	}
}

// demoEchoHost returns the http_component host of cfg whose webhook is the
// demo echo bot this server serves itself on one of httpAddrs, or "".
func demoEchoHost(cfg *conf.Config, httpAddrs []net.Addr) string {
	for _, h := range cfg.Hosts {
		o, ok := h.Options.(*webhook.Options)
		if !ok {
			continue
		}
		u, err := url.Parse(o.PostURL)
		if err != nil || u.Path != demoEchoPath {
			continue
		}
		// The port is what tells Parley's listener apart: the webhook's
		// host may be written as 127.0.0.1, localhost or [::1].
		for _, a := range httpAddrs {
			if _, port, err := net.SplitHostPort(a.String()); err == nil && port == u.Port() {
				return h.Name
			}
		}
	}
	return ""
}

// progName is how the user ran parley, for commands the logs suggest:
// "./bin/parley" after `make run`, "parley" from the PATH, and "parley"
// when the binary has another name (a test).
func progName() string {
	if len(os.Args) > 0 && filepath.Base(os.Args[0]) == "parley" {
		return shellQuote(os.Args[0])
	}
	return "parley"
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// joinAddrs returns addrs separated by commas, or "none".
func joinAddrs(addrs []net.Addr) string {
	if len(addrs) == 0 {
		return "none"
	}
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// servePprof serves net/http/pprof's handlers on addr, which must be a
// loopback address, until ctx ends, and returns the address it listens on.
func servePprof(ctx context.Context, addr string) (net.Addr, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-pprof %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("-pprof %q: profiles are served on loopback addresses only, such as 127.0.0.1:6060", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	return ln.Addr(), nil
}
