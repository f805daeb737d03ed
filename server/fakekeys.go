package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/parley-im/parley/c2s/sasl"
)

// fakeSecretFile is where, in the data directory, the secret of unknown
// users' fake SCRAM exchanges is kept.
const fakeSecretFile = "sasl-fake.key"

// loadFakeSecret returns the secret that keys unknown users' fake SCRAM
// salts, made on the first start and kept in dir (mode 0600): a salt that
// changed at a restart would tell anyone asking twice that nobody has that
// name. With dir "" (a server that keeps nothing) it is drawn anew.
func loadFakeSecret(dir string) ([]byte, error) {
	if dir == "" {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	}
	path := filepath.Join(dir, fakeSecretFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(b) >= 32:
		return b, nil
	case err == nil:
		return nil, fmt.Errorf("%s holds %d bytes, not a secret of 32: remove it and a new one is made", path, len(b))
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read the fake-key secret: %w", err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make the data directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process made it first: read its.
		return loadFakeSecret(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("write the fake-key secret: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the fake-key secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write the fake-key secret: %w", err)
	}
	return b, nil
}

// iterationCounter is what keyIterations reads: storage.Store.
type iterationCounter interface {
	IterationCounts(ctx context.Context, host string) (map[int]int, error)
}

// keyIterations caches the iteration counts of each host's accounts for
// unknown users' fake SCRAM exchanges, read again at most once a minute:
// a count that is a little stale only shifts the proportions a little.
type keyIterations struct {
	store iterationCounter
	every time.Duration

	mu     sync.Mutex
	byHost map[string]iterationsAt
}

type iterationsAt struct {
	counts []sasl.IterationCount
	at     time.Time
}

func newKeyIterations(store iterationCounter) *keyIterations {
	return &keyIterations{store: store, every: time.Minute, byHost: make(map[string]iterationsAt)}
}

// get returns host's counts, reading them when the cached ones are old.
// On a store error the old ones (or none) are kept.
func (k *keyIterations) get(host string) []sasl.IterationCount {
	k.mu.Lock()
	c, ok := k.byHost[host]
	if ok && time.Since(c.at) < k.every {
		k.mu.Unlock()
		return c.counts
	}
	// Others wait on the lock meanwhile: one read a minute for all.
	defer k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := k.store.IterationCounts(ctx, host)
	if err != nil {
		c.at = time.Now() // try again in a minute, not at every login
		k.byHost[host] = c
		return c.counts
	}
	counts := make([]sasl.IterationCount, 0, len(m))
	for it, n := range m {
		counts = append(counts, sasl.IterationCount{Iterations: it, Keys: n})
	}
	// In a fixed order, so that a name picks the same count each time.
	sort.Slice(counts, func(i, j int) bool { return counts[i].Iterations < counts[j].Iterations })
	k.byHost[host] = iterationsAt{counts: counts, at: time.Now()}
	return counts
}
