package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// `getconf CLK_TCK` prints 100 on every Linux architecture Go supports,
// and the kernel keeps it fixed whatever its internal HZ, so it is not
// read at run time (that would need cgo for sysconf).
const clockTicks = 100

// processCPU returns the CPU time (user and system) the process pid has
// used so far, from /proc/PID/stat. Its resolution is 10 ms.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat reads utime and stime, fields 14 and 15 of /proc/PID/stat
// (proc(5)). The command name, field 2, is in parentheses and may hold
// spaces and parentheses itself: fields are counted after its last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no command name")
	}
	// After ')' come field 3 (state), 4, ...: utime is the 12th of them.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("/proc/PID/stat: too few fields")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("/proc/PID/stat: utime or stime is not a number")
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// processRSS returns the resident set size of process pid in KiB, VmRSS
// of /proc/PID/status.
func processRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseRSS(b)
}

func parseRSS(b []byte) (int64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, errors.New("/proc/PID/status: no VmRSS line")
}

// selfCPU returns the CPU time this process has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// raiseNoFile raises the soft limit of open files to hold need of them,
// as far as the hard limit allows. (The Go runtime already raises the soft
// limit to the hard one at start; this is for when it could not, and for
// a clear error when the hard limit is too low.)
func raiseNoFile(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= need {
		return nil
	}
	if lim.Max < need {
		return fmt.Errorf("this run needs %d open files and the hard limit is %d: raise it (ulimit -Hn, or LimitNOFILE in a systemd unit)", need, lim.Max)
	}
	lim.Cur = need
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// meter measures a window of the run: wall time, the server's CPU time
// (when its PID is known) and the load tool's own.
type meter struct {
	pid       int
	start     time.Time
	serverCPU time.Duration
	selfCPU   time.Duration
}

// startMeter opens the measured window.
func startMeter(pid int) (*meter, error) {
	m := &meter{pid: pid, start: time.Now(), selfCPU: selfCPU()}
	if pid > 0 {
		cpu, err := processCPU(pid)
		if err != nil {
			return nil, fmt.Errorf("the server's CPU time: %w", err)
		}
		m.serverCPU = cpu
	}
	return m, nil
}

// stop closes the window and writes what was measured into c.
func (m *meter) stop(c *common) error {
	c.window = time.Since(m.start)
	c.WindowS = seconds(c.window)
	c.LoadCPUS = seconds(selfCPU() - m.selfCPU)
	if m.pid > 0 {
		cpu, err := processCPU(m.pid)
		if err != nil {
			return fmt.Errorf("the server's CPU time: %w", err)
		}
		s := seconds(cpu - m.serverCPU)
		c.ServerCPUS = &s
	}
	return nil
}
