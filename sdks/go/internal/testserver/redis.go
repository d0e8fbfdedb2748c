package testserver

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Redis is a redis-server a test started on 127.0.0.1 and a free port, with
// no persistence, in its own temporary directory; never one someone else
// left running.
type Redis struct {
	// URL is "redis://127.0.0.1:<port>".
	URL string

	cmd    *exec.Cmd
	dir    string
	exited chan struct{}
}

// StartRedis starts a private redis-server. It fails, naming the fix, when
// redis-server is not installed: Redis-mode tests never skip.
func StartRedis() (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH: install it (apt-get install -y redis-server; npm test's scripts/ensure-test-tools.sh does): the Redis-mode tests need it and never skip")
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "maxine-go-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	dieWithParent(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &Redis{URL: "redis://127.0.0.1:" + strconv.Itoa(port), cmd: cmd, dir: dir, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "Ready to accept connections") {
				once = true
				close(ready)
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(r.exited)
	}()
	select {
	case <-ready:
		return r, nil
	case <-r.exited:
		return nil, fmt.Errorf("redis-server exited before it was ready")
	case <-time.After(10 * time.Second):
		r.Stop()
		return nil, fmt.Errorf("redis-server was not ready within 10 s")
	}
}

// Stop kills the server (by its PID) and removes its directory.
func (r *Redis) Stop() {
	_ = r.cmd.Process.Kill()
	<-r.exited
	_ = os.RemoveAll(r.dir)
}
