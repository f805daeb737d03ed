package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parley-im/parley/server"
)

// shutdownTimeout is how long serve waits for sessions to end after it is
// told to stop.
const shutdownTimeout = 10 * time.Second

// serve runs `parley serve`: it starts the server of the config, logs where
// it listens, and runs it until ctx ends or SIGINT or SIGTERM arrives; then
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
