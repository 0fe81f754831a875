package main

// FerretDB 1.24 on SQLite runs an update as a read, a change in Go and a
// write, with nothing that stops two updates of one document from
// interleaving: two parallel `$addToSet`s can lose one, two `$inc`s can
// yield the same number. MongoDB makes every single-document write atomic
// and MiniTwit relies on that. So clients reach FerretDB through this
// proxy, which lets one write command at a time through; reads still run
// in parallel.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

const (
	headerSize  = 16
	maxMessage  = 48 * 1000 * 1000
	opMsg       = 2013
	moreToCome  = 1 << 1
	dialRetries = 50
)

// writeCommands are the commands that change data or its layout.
var writeCommands = map[string]bool{
	"insert": true, "update": true, "delete": true, "findandmodify": true,
	"create": true, "createindexes": true, "drop": true,
	"dropdatabase": true, "dropindexes": true, "renamecollection": true,
}

// serializer forwards client connections to FerretDB's Unix socket.
type serializer struct {
	socket string
	logger *slog.Logger
	writes sync.Mutex
}

// serve accepts clients on listener until ctx ends.
func (s *serializer) serve(ctx context.Context, listener net.Listener) {
	go func() {
		<-ctx.Done()
		listener.Close()
	}()

	for {
		client, err := listener.Accept()
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Error("accept failed", "error", err)
			}
			return
		}
		go s.forward(client)
	}
}

// forward relays one client's requests and FerretDB's replies in turn.
func (s *serializer) forward(client net.Conn) {
	defer client.Close()

	server, err := s.dial()
	if err != nil {
		s.logger.Warn("cannot reach FerretDB", "error", err)
		return
	}
	defer server.Close()

	// NOTE: FerretDB answers every request exactly once and never
	// streams (no exhaust cursors, no awaitable hello), so a strict
	// request-then-reply loop carries the whole protocol.
	for {
		request, err := readMessage(client)
		if err != nil {
			return
		}
		if err := s.exchange(request, client, server); err != nil {
			return
		}
	}
}

// exchange sends one request and relays its reply, one write at a time.
func (s *serializer) exchange(request []byte, client, server net.Conn) error {
	if isWrite(request) {
		s.writes.Lock()
		defer s.writes.Unlock()
	}

	if _, err := server.Write(request); err != nil {
		return err
	}
	if expectsNoReply(request) {
		return nil
	}

	reply, err := readMessage(server)
	if err != nil {
		return err
	}
	_, err = client.Write(reply)
	return err
}

// dial connects to FerretDB, waiting for its socket while it starts.
func (s *serializer) dial() (net.Conn, error) {
	var err error
	for range dialRetries {
		var conn net.Conn
		if conn, err = net.Dial("unix", s.socket); err == nil {
			return conn, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}

// readMessage reads one whole wire protocol message.
func readMessage(r io.Reader) ([]byte, error) {
	header := make([]byte, headerSize)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, err
	}

	length := int(int32(binary.LittleEndian.Uint32(header)))
	if length < headerSize || length > maxMessage {
		return nil, fmt.Errorf("bad message length %d", length)
	}

	message := make([]byte, length)
	copy(message, header)
	if _, err := io.ReadFull(r, message[headerSize:]); err != nil {
		return nil, err
	}
	return message, nil
}

// expectsNoReply tells whether an OP_MSG has its moreToCome flag set.
func expectsNoReply(message []byte) bool {
	if opCode(message) != opMsg || len(message) < headerSize+4 {
		return false
	}
	flags := binary.LittleEndian.Uint32(message[headerSize:])
	return flags&moreToCome != 0
}

// isWrite tells whether a message carries a command that changes data.
func isWrite(message []byte) bool {
	name, err := commandName(message)
	return err == nil && writeCommands[strings.ToLower(name)]
}

// commandName returns the first key of an OP_MSG's body document.
func commandName(message []byte) (string, error) {
	if opCode(message) != opMsg {
		return "", errors.New("not an OP_MSG")
	}

	sections := message[headerSize+4:]
	for len(sections) > 5 {
		kind := sections[0]
		size := int(int32(binary.LittleEndian.Uint32(sections[1:])))
		if size < 5 || size > len(sections)-1 {
			break
		}
		if kind == 0 {
			return firstKey(sections[1 : 1+size])
		}
		sections = sections[1+size:]
	}
	return "", errors.New("no body section")
}

// firstKey returns the name of a BSON document's first element.
func firstKey(document []byte) (string, error) {
	// A document is its length, then elements of type, name, value.
	if len(document) < 6 {
		return "", errors.New("empty document")
	}
	name := document[5:]
	end := bytes.IndexByte(name, 0)
	if end < 0 {
		return "", errors.New("unterminated key")
	}
	return string(name[:end]), nil
}

// opCode returns a message's operation code.
func opCode(message []byte) int32 {
	return int32(binary.LittleEndian.Uint32(message[12:]))
}
