package maxine_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFreshModuleUsesTheSDK runs the README's "use it from your module"
// flow: a new module with a replace directive pointing at this checkout,
// `go mod tidy`, then `go run` of the README's main.go against the server.
func TestFreshModuleUsesTheSDK(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	mainGo := goBlock(t, string(readme), "package main")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(mainGo), 0o644); err != nil {
		t.Fatal(err)
	}
	goBin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatalf("the go command is needed for this test: %v", err)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(goBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "MAXINE_URL="+serverURL())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		t.Logf("go %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
		return out.String()
	}
	run("mod", "init", "example.com/hello")
	run("mod", "edit", "-require=github.com/maxine-registry/maxine/sdks/go@v0.0.0", "-replace=github.com/maxine-registry/maxine/sdks/go="+root)
	run("mod", "tidy")
	out := run("run", ".")
	if want := "user-42 -> greeter-1 at 127.0.0.1:50051\n"; out != want {
		t.Fatalf("go run printed %q, want %q", out, want)
	}
}

// goBlock returns the first ```go block of markdown that starts with prefix.
func goBlock(t *testing.T, markdown, prefix string) string {
	t.Helper()
	for _, part := range strings.Split(markdown, "```go\n")[1:] {
		body, _, ok := strings.Cut(part, "```")
		if ok && strings.HasPrefix(body, prefix) {
			return body
		}
	}
	t.Fatalf("README.md has no ```go block starting with %q", prefix)
	return ""
}
