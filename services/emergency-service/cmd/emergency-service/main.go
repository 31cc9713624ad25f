// Command emergency-service is the sample service ocibake builds: a small HTTP API for emergency calls.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"example.com/sos-app/emergency-service/internal/dispatch"
)

// Set at build time with -ldflags "-X main.Version=... -X main.BuildDate=... -X main.GitCommit=...".
var (
	Version   = "dev"
	BuildDate = "unknown"
	GitCommit = "unknown"
)

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	selfcheck := flag.Bool("selfcheck", false, "check time zones and CA certificates, print JSON and exit")
	flag.Parse()
	if *showVersion {
		fmt.Printf("emergency-service %s (built %s, commit %s)\n", Version, BuildDate, GitCommit)
		return
	}
	if *selfcheck {
		report := check()
		_ = json.NewEncoder(os.Stdout).Encode(report)
		if report.Error != "" {
			os.Exit(1)
		}
		return
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	board := &dispatch.Board{}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, check())
	})
	mux.HandleFunc("/calls", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, board.List())
		case http.MethodPost:
			prio, _ := strconv.Atoi(r.FormValue("priority"))
			c, err := board.Open(r.FormValue("kind"), r.FormValue("location"), prio, time.Now().UTC())
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(w, http.StatusCreated, c)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
	log.Printf("emergency-service %s listening on :%s as uid %d", Version, port, os.Getuid())
	if err := serve(":"+port, mux); err != nil {
		log.Fatal(err)
	}
}

// serve answers on addr until SIGINT or SIGTERM (Ctrl-C, `docker stop`, a pod deleted), then finishes the
// requests in flight and returns nil: a graceful stop exits 0.
func serve(addr string, handler http.Handler) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: addr, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	failed := make(chan error, 1)
	go func() { failed <- srv.ListenAndServe() }()
	select {
	case err := <-failed:
		return err
	case <-ctx.Done():
	}
	log.Printf("stopping: finishing the requests in flight")
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// Health is what /health and -selfcheck report.
type Health struct {
	Status       string `json:"status"`
	Version      string `json:"version"`
	UID          int    `json:"uid"`
	NewYork      string `json:"new_york,omitempty"`
	Certificates int    `json:"certificates"`
	Error        string `json:"error,omitempty"`
}

func check() Health {
	h := Health{Status: "ok", Version: Version, UID: os.Getuid()}
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		h.Status, h.Error = "degraded", "zoneinfo: "+err.Error()
	} else {
		h.NewYork = time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC).In(loc).Format("15:04 MST")
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		h.Status, h.Error = "degraded", "certificates: "+err.Error()
	} else {
		//lint:ignore SA1019 Subjects is fine for counting system roots.
		h.Certificates = len(pool.Subjects()) //nolint:staticcheck
	}
	if h.Certificates == 0 && h.Error == "" {
		h.Status, h.Error = "degraded", "certificates: no CA certificates found"
	}
	return h
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
