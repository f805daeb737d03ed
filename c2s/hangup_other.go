//go:build !linux

package c2s

// canWatchHangUp: without POLLRDHUP a hang-up behind unread bytes cannot
// be seen without reading them, so no watch is kept (watchHangUp).
const canWatchHangUp = false

func hungUp(uintptr) bool { return false }
