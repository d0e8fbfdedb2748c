package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// throughputResult is what one throughput run (Discover, Register) measured.
type throughputResult struct {
	Protocol    string  `json:"protocol"`
	Concurrency int     `json:"concurrency"`
	Client      string  `json:"client"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"per_second"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	// FirstError is the first failed call's error, to say why calls failed.
	FirstError string `json:"first_error,omitempty"`
	// ClientCPU is the cores this client used while measuring (CPU time / wall time): near 1 with GOMAXPROCS=1, the client is the bottleneck.
	ClientCPU float64 `json:"client_cpu"`
}

// discoverCommand runs c concurrent callers of Discover for a duration,
// over Connect JSON on HTTP/1.1 (keep-alive, one connection per caller, as
// curl-like HTTP clients do) or gRPC on HTTP/2 (one connection), after a
// warm-up, and reports requests per second and latency.
func discoverCommand(ctx context.Context, args []string) (any, error) {
	fs := flag.NewFlagSet("discover", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:7400", "server address (loopback only)")
	proto := fs.String("protocol", "json", "json (Connect JSON over HTTP/1.1) or grpc (HTTP/2)")
	c := fs.Int("c", 50, "concurrent callers")
	d := fs.Duration("duration", 10*time.Second, "measured time")
	warm := fs.Duration("warmup", 2*time.Second, "unmeasured time first")
	service := fs.String("service", "discover-bench", "service to discover (registered by the caller)")
	conns := fs.Int("conns", 1, "gRPC: HTTP/2 connections the callers are spread over (a server of several worker processes serves each connection in one of them)")
	cacert := fs.String("cacert", "", "PEM CA file: speak TLS (https, gRPC over TLS) and trust this CA")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var tlsConfig *tls.Config
	scheme := "http"
	if *cacert != "" {
		pem, err := os.ReadFile(*cacert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-cacert %s: no PEM certificate", *cacert)
		}
		tlsConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	var call func(ctx context.Context) error
	switch *proto {
	case "json":
		// HTTP/1.1 also over TLS: a non-nil TLSNextProto map keeps net/http from negotiating h2
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *c, MaxConnsPerHost: *c, ForceAttemptHTTP2: false, TLSClientConfig: tlsConfig,
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
		url := fmt.Sprintf("%s://%s/maxine.registry.v1.RegistryService/Discover", scheme, *addr)
		body := []byte(fmt.Sprintf(`{"service":%q}`, *service))
		call = func(ctx context.Context) error { return postJSON(ctx, client, url, body) }
	case "grpc":
		creds := insecure.NewCredentials()
		if tlsConfig != nil {
			creds = credentials.NewTLS(tlsConfig)
		}
		// each grpc.ClientConn is one connection: separate ClientConns, callers taking them in turn
		clients := make([]registryv1.RegistryServiceClient, max(1, *conns))
		for i := range clients {
			cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(creds))
			if err != nil {
				return nil, err
			}
			defer cc.Close()
			clients[i] = registryv1.NewRegistryServiceClient(cc)
		}
		var next atomic.Uint64
		call = func(ctx context.Context) error {
			rc := clients[next.Add(1)%uint64(len(clients))]
			_, err := rc.Discover(ctx, &registryv1.DiscoverRequest{Service: *service})
			return err
		}
	default:
		return nil, fmt.Errorf("-protocol must be json or grpc, got %q", *proto)
	}
	res := &throughputResult{Protocol: *proto, Concurrency: *c, Client: "Go net/http (json) or grpc-go (grpc)"}
	measure(ctx, *c, *warm, *d, call, res)
	return res, nil
}

// measure runs c concurrent callers of call for warm (unmeasured), then for
// d, and fills res with the measured run: requests, errors, rate, latency
// and this client's CPU.
func measure(ctx context.Context, c int, warm, d time.Duration, call func(ctx context.Context) error, res *throughputResult) {
	run := func(d time.Duration, record bool) ([]float64, int) {
		var mu sync.Mutex
		var lat []float64
		errs := 0
		var once sync.Once
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for i := 0; i < c; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				local := make([]float64, 0, 1<<14)
				le := 0
				for time.Now().Before(deadline) && ctx.Err() == nil {
					t := time.Now()
					if err := call(ctx); err != nil {
						le++
						once.Do(func() { res.FirstError = err.Error() })
						continue
					}
					local = append(local, float64(time.Since(t).Microseconds())/1000)
				}
				if record {
					mu.Lock()
					lat = append(lat, local...)
					errs += le
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return lat, errs
	}
	run(warm, false)
	start := time.Now()
	cpu0 := cpuSeconds()
	lat, errs := run(d, true)
	res.Seconds = time.Since(start).Seconds()
	res.ClientCPU = (cpuSeconds() - cpu0) / res.Seconds
	sort.Float64s(lat)
	res.Requests, res.Errors = len(lat), errs
	res.PerSecond = float64(len(lat)) / res.Seconds
	if len(lat) > 0 {
		res.P50, res.P99 = lat[len(lat)/2], lat[min(len(lat)-1, int(0.99*float64(len(lat))))]
	}
}

// postJSON sends one Connect JSON unary call (a POST of body to url) and
// reads its answer; a status other than 200 is an error.
func postJSON(ctx context.Context, client *http.Client, url string, body []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", res.StatusCode)
	}
	return nil
}

// cpuSeconds is the CPU time (user and system) this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
