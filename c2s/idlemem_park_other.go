//go:build !linux

package c2s

// newPoller reports no poller: sessions wait in their goroutines.
func newPoller(*Server) (poller, error) { return nil, nil }
