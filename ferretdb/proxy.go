package main

// A MongoDB wire-protocol proxy that runs write commands one at a time.
//
// FerretDB's SQLite backend updates a document by reading it, changing it
// in Go and writing it back, with nothing stopping another connection in
// between; concurrent $inc or $addToSet on one document then lose
// updates. MongoDB makes every single-document write atomic, and our data
// layer relies on that, so the proxy serializes writes across all
// connections while reads still run side by side.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Wire-protocol constants from the MongoDB specification.
const (
	headerLen     = 16         // messageLength, requestID, responseTo, opCode
	maxMessageLen = 48_000_000 // MongoDB's and FerretDB's limit

	opCompressed = 2012
	opMsg        = 2013

	flagChecksumPresent = 1 << 0
	flagMoreToCome      = 1 << 1
)

// writeCommands are the commands of FerretDB 1.24 that change stored data
// or metadata; aggregate cannot, as FerretDB lacks $out and $merge.
var writeCommands = map[string]bool{
	"insert":                   true,
	"update":                   true,
	"delete":                   true,
	"findAndModify":            true,
	"findandmodify":            true,
	"create":                   true,
	"createIndexes":            true,
	"dropIndexes":              true,
	"drop":                     true,
	"dropDatabase":             true,
	"renameCollection":         true,
	"collMod":                  true,
	"compact":                  true,
	"createUser":               true,
	"updateUser":               true,
	"dropUser":                 true,
	"dropAllUsersFromDatabase": true,
}

// readMessage reads one whole wire-protocol message, header included.
func readMessage(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}

	n := int32(binary.LittleEndian.Uint32(size[:]))
	if n < headerLen || n > maxMessageLen {
		return nil, fmt.Errorf("bad message length %d", n)
	}

	msg := make([]byte, n)
	copy(msg, size[:])
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// opCode returns the operation code from a message's header.
func opCode(msg []byte) int32 {
	return int32(binary.LittleEndian.Uint32(msg[12:16]))
}

// msgFlags returns an OP_MSG's flag bits, or 0 for any other message.
func msgFlags(msg []byte) uint32 {
	if opCode(msg) != opMsg || len(msg) < headerLen+4 {
		return 0
	}
	return binary.LittleEndian.Uint32(msg[headerLen:])
}

// moreToCome tells whether a request is an OP_MSG that wants no reply.
func moreToCome(msg []byte) bool {
	return msgFlags(msg)&flagMoreToCome != 0
}

// commandName returns the command an OP_MSG carries, or "" if it is no
// OP_MSG or its body cannot be read.
func commandName(msg []byte) string {
	if opCode(msg) != opMsg || len(msg) < headerLen+4 {
		return ""
	}

	end := len(msg)
	if msgFlags(msg)&flagChecksumPresent != 0 {
		end -= 4
	}

	// Sections follow the flags: a kind byte, then a BSON document (kind
	// 0, the command) or a sized document sequence (kind 1). Both start
	// with an int32 length that counts itself. Drivers put the command
	// first, but the specification does not promise it, so skip to it.
	sections := msg[headerLen+4 : max(end, headerLen+4)]
	for len(sections) >= 5 {
		kind := sections[0]
		size := int(int32(binary.LittleEndian.Uint32(sections[1:5])))
		if size < 5 || size > len(sections)-1 {
			return ""
		}

		body := sections[1 : 1+size]
		switch kind {
		case 0:
			return firstKey(body)
		case 1:
			sections = sections[1+size:]
		default:
			return ""
		}
	}
	return ""
}

// firstKey returns the name of a BSON document's first element, which in
// a command document is the command's name.
func firstKey(doc []byte) string {
	// Layout: int32 length, then elements (type byte, NUL-terminated
	// name, value), then a NUL; a type byte of 0 means no elements.
	if len(doc) < 6 || doc[4] == 0 {
		return ""
	}

	name := doc[5:]
	for i, b := range name {
		if b == 0 {
			return string(name[:i])
		}
	}
	return ""
}

// isWrite tells whether a request must run alone among writes.
func isWrite(msg []byte) bool {
	// TODO: an OP_COMPRESSED request is relayed unlocked, as its command
	// is compressed; FerretDB 1.24 offers no compression in its hello and
	// closes a connection that sends one, so no driver gets that far.
	return writeCommands[commandName(msg)]
}

// proxy relays client connections to the FerretDB at upstream.
type proxy struct {
	upstream string
	logger   *slog.Logger

	writes sync.Mutex // held from sending a write until its reply is in

	mu    sync.Mutex
	conns map[net.Conn]struct{} // open connections, both sides
}

// newProxy returns a proxy to the FerretDB listening at upstream.
func newProxy(upstream string, logger *slog.Logger) *proxy {
	return &proxy{
		upstream: upstream,
		logger:   logger,
		conns:    make(map[net.Conn]struct{}),
	}
}

// serve accepts clients on ln until ctx ends, then closes every
// connection and waits for their relays to finish.
func (p *proxy) serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		p.closeAll()
	})
	defer stop()

	var relays sync.WaitGroup
	defer relays.Wait()

	for {
		client, err := ln.Accept()
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case errors.Is(err, net.ErrClosed):
			return err
		case err != nil:
			// Out of file descriptors, say: wait rather than spin.
			p.logger.Warn("accept failed", "error", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}

		relays.Add(1)
		go func() {
			defer relays.Done()
			p.relay(ctx, client)
		}()
	}
}

// relay passes one client's requests to its own upstream connection and
// the replies back, one exchange at a time, until either side closes.
func (p *proxy) relay(ctx context.Context, client net.Conn) {
	if !p.track(client) {
		client.Close()
		return
	}
	defer p.untrack(client)

	var dialer net.Dialer
	upstream, err := dialer.DialContext(ctx, "tcp", p.upstream)
	if err != nil {
		p.logger.Warn("cannot reach FerretDB", "error", err)
		return
	}
	if !p.track(upstream) {
		upstream.Close()
		return
	}
	defer p.untrack(upstream)

	fromClient := bufio.NewReader(client)
	fromUpstream := bufio.NewReader(upstream)
	for {
		request, err := readMessage(fromClient)
		if err != nil {
			p.logEnd("client", err)
			return
		}

		reply, err := p.forward(request, upstream, fromUpstream)
		if err != nil {
			p.logEnd("FerretDB", err)
			return
		}

		if reply == nil {
			continue
		}
		if _, err := client.Write(reply); err != nil {
			p.logEnd("client", err)
			return
		}
	}
}

// forward sends one request upstream and returns the reply the client
// expects, nil if it expects none; writes hold the lock throughout.
func (p *proxy) forward(
	request []byte, upstream io.Writer, fromUpstream io.Reader,
) ([]byte, error) {
	if isWrite(request) {
		p.writes.Lock()
		defer p.writes.Unlock()
	}

	if _, err := upstream.Write(request); err != nil {
		return nil, err
	}

	// NOTE: FerretDB 1.24 answers every request exactly once: it never
	// streams replies, and it answers an OP_MSG even with moreToCome
	// set, where MongoDB sends nothing. Waiting for that answer keeps an
	// unacknowledged write inside the lock; dropping it keeps the client,
	// which reads no reply, in step with the server.
	reply, err := readMessage(fromUpstream)
	if err != nil {
		return nil, err
	}

	if moreToCome(request) {
		return nil, nil
	}
	return reply, nil
}

// track records an open connection, or says false if closing has begun.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()

	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// untrack closes a connection and forgets it.
func (p *proxy) untrack(c net.Conn) {
	c.Close()

	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// closeAll closes every open connection and refuses new ones.
func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()

	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// logEnd notes why a relay ended; a side hanging up is the normal end.
func (p *proxy) logEnd(side string, err error) {
	switch {
	case errors.Is(err, io.EOF):
		p.logger.Debug("connection closed", "by", side)
	case errors.Is(err, net.ErrClosed):
		p.logger.Debug("connection closed", "by", "proxy")
	default:
		p.logger.Info("connection dropped", "side", side, "error", err)
	}
}
