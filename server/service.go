package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/parley-im/parley/conf"
)

// A service is a part of a server that is neither a host nor a set of
// routes: it has its own listeners and lifetime, and takes what the
// router sends it. Federation (package server/federation, which wires
// package s2s) is one. It registers by name from an init, like a host
// type, and the binary imports it (see package server/std); the server
// names none.

// ServiceType is what the server needs of a service.
type ServiceType struct {
	// New builds the service of one server, in New after the hosts.
	// It returns nil and no error when the config does not turn the
	// service on. An error fails New. Required.
	New func(env *ServiceEnv) (Service, error)
}

// ServiceEnv is what the server gives a service's New.
type ServiceEnv struct {
	// Config is the whole config, checked.
	Config *conf.Config
	// Router is the server's router: the service routes what it takes
	// in, and may take what no host serves (Router.SetRemote).
	Router *Router
	// TLS is the server side TLS config: the hosts' certificates by SNI.
	TLS *tls.Config
	// Certificate is a host's certificate, by domain.
	Certificate func(domain string) (*tls.Certificate, bool)
	// Log is the server's logger.
	Log *slog.Logger
}

// Service is one server's running service.
type Service interface {
	// Listen opens the service's listeners at Start, after the c2s and
	// HTTP ones, and serves them in the background. An error fails
	// Start, which then closes what it returned.
	Listen(ctx context.Context) (Listener, error)
	// Metrics writes the service's metrics in the Prometheus text
	// format, at the end of GET /metrics.
	Metrics(w io.Writer)
	// Shutdown ends the service: in Server.Shutdown after the hosts
	// drained and before the client sessions close (what remote peers
	// still send finds them, and what waits for a peer bounces to
	// them), or when New fails after the service was built.
	Shutdown(ctx context.Context) error
}

var (
	serviceTypesMu sync.RWMutex
	serviceTypes   []namedServiceType
)

type namedServiceType struct {
	name string
	ServiceType
}

// RegisterService makes every server this binary builds run the service
// name (when its config turns it on). It panics when name is empty or
// taken or when t has no New: these are mistakes in the program.
func RegisterService(name string, t ServiceType) {
	if name == "" || t.New == nil {
		panic("server: RegisterService needs a name and a New")
	}
	serviceTypesMu.Lock()
	defer serviceTypesMu.Unlock()
	for _, o := range serviceTypes {
		if o.name == name {
			panic("server: service " + name + " is registered twice")
		}
	}
	serviceTypes = append(serviceTypes, namedServiceType{name, t})
}

// registeredServices returns the registered services, in the order of
// their registration.
func registeredServices() []namedServiceType {
	serviceTypesMu.RLock()
	defer serviceTypesMu.RUnlock()
	return append([]namedServiceType(nil), serviceTypes...)
}

// runningService is a service this server built.
type runningService struct {
	name string
	Service
}

// buildServices builds the registered services that the config turns on.
func (s *Server) buildServices() error {
	for _, t := range registeredServices() {
		svc, err := t.New(&ServiceEnv{
			Config: s.cfg, Router: s.router, TLS: s.certs.TLSConfig(),
			Certificate: s.certs.Certificate, Log: s.log,
		})
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if svc != nil {
			s.services = append(s.services, runningService{t.name, svc})
		}
	}
	return nil
}

// listenServices opens the services' listeners. On an error it returns
// those it opened, for Start to close.
func (s *Server) listenServices(ctx context.Context) ([]Listener, error) {
	var opened []Listener
	for _, svc := range s.services {
		l, err := svc.Listen(ctx)
		if err != nil {
			return opened, err
		}
		opened = append(opened, l)
	}
	return opened, nil
}

// shutdownServices ends the services while ctx allows.
func (s *Server) shutdownServices(ctx context.Context) {
	for _, svc := range s.services {
		if err := svc.Shutdown(ctx); err != nil {
			s.log.Warn("server: service shutdown", "service", svc.name, "err", err)
		}
	}
}

// Service returns the service name of this server, as its New built it;
// false when the binary does not register it or the config does not turn
// it on.
func (s *Server) Service(name string) (Service, bool) {
	for _, svc := range s.services {
		if svc.name == name {
			return svc.Service, true
		}
	}
	return nil, false
}
