// Package testserver runs the real, built Maxine server
// (server/dist/main.js) as a child process on a loopback port, for the Go
// SDK's tests and benchmarks. It never mocks anything: when the build or
// node is missing it fails, saying what to run.
package testserver

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Main returns the path of the built server entry point, resolved from this
// file's location in the repository.
func Main() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "server", "dist", "main.js")
}

// Server is one running server process.
type Server struct {
	// Port is the port it listens on (127.0.0.1).
	Port int
	// URL is "http://127.0.0.1:<port>".
	URL string

	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	logs   []string
}

// HeaderEcho returns the path of the test fixture that runs the built
// server and prints each call's authorization header and mTLS peer
// identity as a JSON line ("msg":"test: call").
func HeaderEcho() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "server", "test", "fixtures", "header-echo-server.mjs")
}

// MakeCerts runs scripts/make-test-certs.sh (openssl) into dir: a CA, server
// certificates (server, server-2) and client ones (client, client-cn,
// rogue-client), each NAME.pem with NAME-key.pem.
func MakeCerts(dir string) error {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "scripts", "make-test-certs.sh")
	out, err := exec.Command("bash", script, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("make-test-certs.sh: %v: %s", err, out)
	}
	return nil
}

// Start runs the server with env (MAXINE_* settings; MAXINE_PORT defaults
// to 0, a free port) and returns once it logged "maxine listening".
func Start(env map[string]string) (*Server, error) {
	return StartEntry(Main(), env)
}

// StartEntry is Start with another entry script (HeaderEcho). With
// MAXINE_TLS_CERT in env, URL is https://.
func StartEntry(main string, env map[string]string) (*Server, error) {
	if _, err := os.Stat(Main()); err != nil {
		return nil, fmt.Errorf("the built server %s is missing: run `npm ci && npm run build` at the repository root first (%v)", Main(), err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node is not on PATH: the Go SDK's tests run the real server with Node.js 20+ (%v)", err)
	}
	cmd := exec.Command(node, main)
	cmd.Env = append(os.Environ(), "MAXINE_HOST=127.0.0.1", "MAXINE_PORT=0", "MAXINE_LOG_LEVEL=info")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	dieWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", main, err)
	}
	s := &Server{cmd: cmd, exited: make(chan struct{})}
	ports := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs = append(s.logs, line)
			s.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Port *int   `json:"port"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "maxine listening" && rec.Port != nil {
				select {
				case ports <- *rec.Port:
				default:
				}
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	select {
	case port := <-ports:
		scheme := "http"
		if env["MAXINE_TLS_CERT"] != "" {
			scheme = "https"
		}
		s.Port, s.URL = port, scheme+"://127.0.0.1:"+strconv.Itoa(port)
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("server exited (%v) before listening: %s", cmd.ProcessState, stderr.String())
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-s.exited
		return nil, fmt.Errorf("server did not log \"maxine listening\" within 15s: %s", stderr.String())
	}
}

// Stop sends SIGTERM and waits for the exit (SIGKILL after 10 s).
func (s *Server) Stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("server ignored SIGTERM for 10s; killed")
	}
	if st := s.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("server exited with %v", st)
	}
	return nil
}

// Signal sends sig (SIGHUP reloads the TLS certificate).
func (s *Server) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits for the exit.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Logs returns the JSON log lines printed so far.
func (s *Server) Logs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.logs...)
}

// FreePort returns a loopback port that was free a moment ago, for tests
// that restart a server on the same port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

// Write appends p.
func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// String returns what was written.
func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
