package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// maxPasswordLine is the longest line readPassword accepts, its line
// ending included: a longer one is a file piped in by mistake.
const maxPasswordLine = 4096

var (
	errEmptyPassword = errors.New("the password is empty; an account needs one")
	errNoPassword    = errors.New("no password: write it as one line on standard input")
	errMismatch      = errors.New("the two passwords differ")
)

// readPassword reads a new password for the account who. When in is a
// terminal it prompts on prompt for the password and then for it again,
// with echo turned off by stty; where there is no stty it says that the
// password will be shown. Otherwise it reads exactly one line from in and
// takes it without its line ending. An empty password is an error.
//
// Tests pass a strings.Reader, which is never a terminal.
func readPassword(in io.Reader, prompt io.Writer, who string) (string, error) {
	var (
		password string
		err      error
	)
	f, ok := in.(*os.File)
	if ok && isCharDevice(f) {
		state, serr := sttyState(f)
		switch {
		case serr == nil:
			password, err = promptPassword(f, prompt, who, state)
		case errors.Is(serr, exec.ErrNotFound):
			password, err = promptPassword(f, prompt, who, "")
		default:
			// A character device that is not a terminal, like /dev/null.
			password, err = readLine(bufio.NewReaderSize(f, maxPasswordLine))
		}
	} else {
		password, err = readLine(bufio.NewReaderSize(in, maxPasswordLine))
	}
	if err != nil {
		return "", err
	}
	if password == "" {
		return "", errEmptyPassword
	}
	return password, nil
}

// promptPassword asks for the password twice on the terminal f, writing
// its prompts to prompt. state is the terminal's settings from sttyState,
// with which echo is turned off and then restored; empty means that echo
// cannot be turned off.
func promptPassword(f *os.File, prompt io.Writer, who, state string) (string, error) {
	r := bufio.NewReaderSize(f, maxPasswordLine)
	echo := state == ""
	if !echo {
		restore, err := noEcho(f, prompt, state)
		if err != nil {
			echo = true
		} else {
			defer restore()
		}
	}
	if echo {
		fmt.Fprintln(prompt, "note: echo cannot be turned off here (no stty), so the password shows as you type it")
	}
	ask := func(p string) (string, error) {
		fmt.Fprint(prompt, p)
		line, err := readLine(r)
		if !echo {
			// The newline the user typed was not echoed either.
			fmt.Fprintln(prompt)
		}
		return line, err
	}
	first, err := ask("Password for " + who + ": ")
	if err != nil || first == "" {
		return first, err
	}
	second, err := ask("Again: ")
	if err != nil {
		return "", err
	}
	if first != second {
		return "", errMismatch
	}
	return first, nil
}

// readLine reads one line from r and returns it without its line ending
// ("\n" or "\r\n"). A last line without a line ending counts; no line at
// all is errNoPassword.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("the password is longer than %d bytes", maxPasswordLine-1)
	case errors.Is(err, io.EOF) && len(line) == 0:
		return "", errNoPassword
	case err != nil && !errors.Is(err, io.EOF):
		return "", fmt.Errorf("reading the password: %w", err)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return string(line), nil
}

// isCharDevice reports whether f is a character device, as a terminal is.
func isCharDevice(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// sttyState returns the settings of the terminal f, as `stty -g` prints
// them. It fails when f is not a terminal, and with an error that wraps
// exec.ErrNotFound when there is no stty.
func sttyState(f *os.File) (string, error) {
	cmd := exec.Command("stty", "-g")
	cmd.Stdin = f
	out, err := cmd.Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// stty runs stty with args on the terminal f.
func stty(f *os.File, args ...string) error {
	cmd := exec.Command("stty", args...)
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stty %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// noEcho turns off echo on the terminal f until restore is called, which
// puts back state, or says on prompt how to when it cannot. A signal that
// ends the process meanwhile restores state first, so that an interrupted
// prompt does not leave the shell without echo.
func noEcho(f *os.File, prompt io.Writer, state string) (restore func(), err error) {
	if err := stty(f, "-echo"); err != nil {
		return nil, err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	reset := func() {
		if err := stty(f, state); err != nil {
			fmt.Fprintf(prompt, "parley: %v; run `stty sane` to see what you type again\n", err)
		}
	}
	go func() {
		select {
		case sig := <-sigs:
			reset()
			code := 1
			if s, ok := sig.(syscall.Signal); ok {
				code = 128 + int(s)
			}
			os.Exit(code)
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(done)
			reset()
		})
	}, nil
}
