// Command ferretdb runs an embedded FerretDB server on SQLite storage.
//
// It stands in for MongoDB on developer machines and in tests: one
// process, one data directory, one TCP address.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
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
	flag.Parse()

	if err := run(*listenAddr, *dataDir, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

// run serves until SIGTERM or SIGINT, then closes connections and storage.
func run(listenAddr, dataDir, logLevel string) error {
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

	socketDir, err := os.MkdirTemp("", "ferretdb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(socketDir)
	socket := filepath.Join(socketDir, "ferretdb.sock")

	// The embedded package keeps telemetry off and stores no state file.
	// It listens on a private socket; clients come through the serializer.
	server, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: socket},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return err
	}

	listener, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return err
	}
	proxy := &serializer{socket: socket, logger: logger}
	go proxy.serve(ctx, listener)

	logger.Info("serving", "addr", listenAddr, "data", sqliteURL)
	err = server.Run(ctx)
	listener.Close()
	logger.Info("stopped")
	return err
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
