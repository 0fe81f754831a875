// Command ferretdb runs an embedded FerretDB server on SQLite storage.
//
// It stands in for MongoDB on developer machines and in tests: one
// process, one data directory, one TCP address. Clients reach FerretDB
// through a small proxy (proxy.go) that runs writes one at a time, so
// that each is atomic as on MongoDB; FerretDB itself listens on a
// loopback port of its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listenAddr := flag.String(
		"listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String(
		"data-dir", "data", "directory for the SQLite files (created)")
	logLevel := flag.String(
		"log-level", "warn", "log level: debug, info, warn or error")
	internalAddr := flag.String(
		"internal-addr", "127.0.0.1:0",
		"loopback address of FerretDB behind the proxy (port 0: any); "+
			"for benchmarks and debugging only, as clients there "+
			"lose the atomic writes")
	flag.Parse()

	err := run(*listenAddr, *internalAddr, *dataDir, *logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

// run serves until SIGTERM or SIGINT, then closes connections and storage.
func run(listenAddr, internalAddr, dataDir, logLevel string) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("bad -log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(
		os.Stderr, &slog.HandlerOptions{Level: level}))

	sqliteURL, err := storageURL(dataDir)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(
		context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Take the clients' address first: if it is in use, fail before
	// opening any storage.
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return err
	}
	defer ln.Close()

	// The embedded package keeps telemetry off and stores no state file.
	// NOTE: FerretDB could listen on a Unix socket instead, but a socket
	// path is limited to about 100 bytes and a killed server leaves its
	// file behind; a loopback port has neither problem.
	server, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: internalAddr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return err
	}

	internal, err := url.Parse(server.MongoDBURI())
	if err != nil {
		return err
	}

	logger.Info("serving", "addr", ln.Addr(), "internal", internal.Host,
		"data", sqliteURL)
	err = serve(ctx, server, newProxy(internal.Host, logger), ln)
	logger.Info("stopped")
	return err
}

// serve runs FerretDB and the proxy in front of it until ctx ends or the
// proxy fails, and returns once both have stopped.
func serve(ctx context.Context, server *ferretdb.FerretDB, p *proxy,
	ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		runErr = server.Run(ctx)
	}()

	err := p.serve(ctx, ln)
	cancel()
	wg.Wait()
	return errors.Join(err, runErr)
}

// storageURL creates dataDir and returns it as the SQLite directory URL.
func storageURL(dataDir string) (string, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", err
	}

	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", err
	}

	// FerretDB wants a file: URL naming an existing directory, with a
	// trailing slash; url.URL escapes any odd characters in the path.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs) + "/"}
	return u.String(), nil
}
