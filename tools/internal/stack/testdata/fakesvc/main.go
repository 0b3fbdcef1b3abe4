// Command fakesvc stands in for a sagasuite service in the stack's own
// tests: built under a service's name (order, inventory, …), it reads that
// service's <NAME>_GRPC_ADDR and <NAME>_OPS_ADDR, listens on both, answers
// /readyz, logs its environment as one JSON line and exits 0 on SIGTERM.
// <NAME>_FAKE_MODE makes it misbehave: never-ready, exit-at-start,
// ignore-term, crash-after-ready.
package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	prefix := strings.ToUpper(filepath.Base(os.Args[0])) + "_"
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, prefix) {
			env[k] = v
		}
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"msg": "fake service env", "env": env})
	mode := env[prefix+"FAKE_MODE"]
	if mode == "exit-at-start" {
		os.Stderr.WriteString("fake: exiting at start as asked\n")
		os.Exit(3)
	}

	grpcLn, err := net.Listen("tcp", env[prefix+"GRPC_ADDR"])
	if err != nil {
		os.Stderr.WriteString("fake: " + err.Error() + "\n")
		os.Exit(1)
	}
	defer grpcLn.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if mode == "never-ready" {
			http.Error(w, "not ready: fake never gets ready", http.StatusServiceUnavailable)
			return
		}
		if mode == "crash-after-ready" {
			go func() {
				time.Sleep(50 * time.Millisecond)
				os.Stderr.WriteString("fake: crashing as asked\n")
				os.Exit(2)
			}()
		}
		w.Write([]byte("ok\n"))
	})
	opsLn, err := net.Listen("tcp", env[prefix+"OPS_ADDR"])
	if err != nil {
		os.Stderr.WriteString("fake: " + err.Error() + "\n")
		os.Exit(1)
	}
	go http.Serve(opsLn, mux)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	for range signals {
		if mode == "ignore-term" {
			os.Stderr.WriteString("fake: ignoring SIGTERM\n")
			continue
		}
		os.Stderr.WriteString("fake: stopping\n")
		return
	}
}
