// Command loadgen is the Go load client of Maxine's benchmarks: Go, so that
// the client is not what saturates first, and the same client and method
// for Maxine and for etcd. The Node.js scripts under bench/ start the
// servers, run loadgen, and print and chart its JSON output.
//
//	loadgen fanout -target maxine -addr 127.0.0.1:7400 -n 1000 -trials 5
//	loadgen fanout -target etcd -addr 127.0.0.1:2379 -n 1000 -trials 5
//	loadgen heartbeat -addr 127.0.0.1:7400 -streams 10000 -ttl 10s -hold 15s
//	loadgen discover -addr 127.0.0.1:7400 -protocol json -c 50 -duration 10s
//	loadgen snapshot -addr 127.0.0.1:7400 -instances 10000 -trials 10
//	loadgen storm -addr 127.0.0.1:7400 -sessions 10000 -watchers 100   (then "GO" on stdin)
//	loadgen fanout -target maxine-config -addr 127.0.0.1:7400 -n 1000 -trials 20
//	loadgen fanout -target maxine-xds -addr 127.0.0.1:7400 -n 1000 -trials 20   (raw ADS subscribers, EDS)
//	loadgen put -target maxine -addr 127.0.0.1:7400 -c 64 -duration 5s   (or -target etcd)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"
)

// stderr carries progress lines ("READY") for the orchestrating script; results go to stdout as JSON.
var stderr = os.Stderr

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen fanout|heartbeat|discover|snapshot|storm|put|register [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// LOADGEN_CPUPROFILE=file writes the client's CPU profile (go tool pprof), to tell whether the client is the bottleneck.
	if path := os.Getenv("LOADGEN_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	var (
		out any
		err error
	)
	switch os.Args[1] {
	case "fanout":
		out, err = fanoutCommand(ctx, os.Args[2:])
	case "heartbeat":
		out, err = heartbeatCommand(ctx, os.Args[2:])
	case "discover":
		out, err = discoverCommand(ctx, os.Args[2:])
	case "snapshot":
		out, err = snapshotCommand(ctx, os.Args[2:])
	case "storm":
		out, err = stormCommand(ctx, os.Args[2:])
	case "put":
		out, err = putCommand(ctx, os.Args[2:])
	case "register":
		out, err = registerCommand(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown scenario %q (want fanout, heartbeat, discover, snapshot, storm, put or register)", os.Args[1])
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func fanoutCommand(ctx context.Context, args []string) (any, error) {
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	target := fs.String("target", "maxine", "maxine (WatchServices), maxine-config (ConfigService.Watch), maxine-xds (ADS, EDS) or etcd")
	addr := fs.String("addr", "127.0.0.1:7400", "server address (loopback only)")
	n := fs.Int("n", 1000, "watchers")
	conns := fs.Int("conns", 4, "client connections the watchers are spread over")
	trials := fs.Int("trials", 5, "changes to time")
	warmup := fs.Int("warmup", 2, "unmeasured changes first (reported as warmup_ms): the first change after a start runs cold code on either server")
	gap := fs.Duration("gap", 300*time.Millisecond, "pause between trials (both sides idle in between)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var t fanoutTarget
	switch *target {
	case "maxine":
		t = &maxineFanout{addr: *addr, conns: *conns, service: "fanout"}
	case "etcd":
		t = &etcdFanout{endpoint: *addr, conns: *conns, prefix: "/fanout/"}
	case "maxine-config":
		t = &configFanout{addr: *addr, conns: *conns, service: "fanout"}
	case "maxine-xds":
		t = &xdsFanout{addr: *addr, conns: *conns, service: "fanout"}
	default:
		return nil, fmt.Errorf("-target must be maxine, maxine-config, maxine-xds or etcd, got %q", *target)
	}
	defer t.close()
	return runFanout(ctx, t, *target, *n, *conns, *warmup, *trials, *gap)
}
