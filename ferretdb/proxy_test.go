package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const opQuery = 2004

// doc returns the BSON document {key: 1}.
func doc(key string) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, 0) // length, set below
	b = append(b, 0x10)                        // int32 element
	b = append(b, key...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = append(b, 0)
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	return b
}

// body returns a kind 0 section holding d.
func body(d []byte) []byte {
	return append([]byte{0}, d...)
}

// sequence returns a kind 1 section named id holding docs.
func sequence(id string, docs ...[]byte) []byte {
	payload := append([]byte(id), 0)
	for _, d := range docs {
		payload = append(payload, d...)
	}
	size := binary.LittleEndian.AppendUint32(nil, uint32(4+len(payload)))
	return append(append([]byte{1}, size...), payload...)
}

// message returns a wire message with the given request ID and opcode.
func message(requestID, responseTo, op int32, payload []byte) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(headerLen+len(payload)))
	b = binary.LittleEndian.AppendUint32(b, uint32(requestID))
	b = binary.LittleEndian.AppendUint32(b, uint32(responseTo))
	b = binary.LittleEndian.AppendUint32(b, uint32(op))
	return append(b, payload...)
}

// opMsgOf returns an OP_MSG with the given flags and sections.
func opMsgOf(requestID int32, flags uint32, sections ...[]byte) []byte {
	payload := binary.LittleEndian.AppendUint32(nil, flags)
	for _, s := range sections {
		payload = append(payload, s...)
	}
	return message(requestID, 0, opMsg, payload)
}

// command returns an OP_MSG carrying the command name.
func command(requestID int32, name string, flags uint32) []byte {
	return opMsgOf(requestID, flags, body(doc(name)))
}

func TestCommandNameReadsFirstKeyOfBody(t *testing.T) {
	withChecksum := append(
		opMsgOf(1, flagChecksumPresent, body(doc("update"))), 1, 2, 3, 4)
	truncated := command(1, "insert", 0)
	truncated = truncated[:len(truncated)-8]
	empty := []byte{5, 0, 0, 0, 0}
	cases := []struct {
		name string
		msg  []byte
		want string
	}{
		{"insert", command(1, "insert", 0), "insert"},
		{"find", command(1, "find", 0), "find"},
		{"unacknowledged", command(1, "delete", flagMoreToCome), "delete"},
		{"body after sequence", opMsgOf(1, 0,
			sequence("documents", doc("a"), doc("b")),
			body(doc("insert"))), "insert"},
		{"body before sequence", opMsgOf(1, 0, body(doc("update")),
			sequence("updates", doc("q"))), "update"},
		{"checksum", withChecksum, "update"},
		{"empty body", opMsgOf(1, 0, body(empty)), ""},
		{"no sections", opMsgOf(1, 0), ""},
		{"truncated", truncated, ""},
		{"unknown kind", opMsgOf(1, 0, append([]byte{7}, doc("x")...)), ""},
		{"OP_QUERY", message(1, 0, opQuery, doc("insert")), ""},
		{"OP_COMPRESSED", message(1, 0, opCompressed, doc("insert")), ""},
	}

	for _, c := range cases {
		if got := commandName(c.msg); got != c.want {
			t.Errorf("%s: commandName = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestIsWriteOnlyForWriteCommands(t *testing.T) {
	for _, name := range []string{
		"insert", "update", "delete", "findAndModify", "createIndexes",
		"dropIndexes", "drop", "dropDatabase", "create",
	} {
		if !isWrite(command(1, name, 0)) {
			t.Errorf("%s is not taken for a write", name)
		}
	}

	for _, name := range []string{
		"find", "getMore", "aggregate", "hello", "ping", "count",
	} {
		if isWrite(command(1, name, 0)) {
			t.Errorf("%s is taken for a write", name)
		}
	}
}

func TestMoreToComeOnlyOnOpMsgWithTheFlag(t *testing.T) {
	if !moreToCome(command(1, "insert", flagMoreToCome)) {
		t.Error("moreToCome not seen")
	}
	if moreToCome(command(1, "insert", flagChecksumPresent)) {
		t.Error("moreToCome seen in a message without it")
	}

	// The same bits where an OP_QUERY keeps its own flags mean nothing.
	query := message(1, 0, opQuery,
		binary.LittleEndian.AppendUint32(nil, flagMoreToCome))
	if moreToCome(query) {
		t.Error("moreToCome seen in an OP_QUERY")
	}
}

func TestReadMessageSplitsAStream(t *testing.T) {
	first, second := command(1, "insert", 0), command(2, "find", 0)
	r := bytes.NewReader(append(append([]byte{}, first...), second...))

	for _, want := range [][]byte{first, second} {
		got, err := readMessage(r)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("readMessage = %v, %v; want %v", got, err, want)
		}
	}
	if _, err := readMessage(r); err != io.EOF {
		t.Errorf("at the end readMessage = %v, want EOF", err)
	}
}

func TestReadMessageRejectsBadInput(t *testing.T) {
	msg := command(1, "insert", 0)
	if _, err := readMessage(bytes.NewReader(msg[:len(msg)-1])); !errors.Is(
		err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated message: err = %v", err)
	}

	tooShort := binary.LittleEndian.AppendUint32(nil, headerLen-1)
	if _, err := readMessage(bytes.NewReader(tooShort)); err == nil {
		t.Error("length below the header's accepted")
	}
}

// fakeFerretDB answers every request with an OP_MSG {ok: 1}, as FerretDB
// does, after calling hold with the request's command name.
func fakeFerretDB(t *testing.T, hold func(name string)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go answer(conn, hold)
		}
	}()
	return ln.Addr().String()
}

// answer serves one connection of fakeFerretDB.
func answer(conn net.Conn, hold func(name string)) {
	defer conn.Close()

	r := bufio.NewReader(conn)
	for {
		request, err := readMessage(r)
		if err != nil {
			return
		}

		hold(commandName(request))
		requestID := int32(binary.LittleEndian.Uint32(request[4:8]))
		reply := opMsgOf(0, 0, body(doc("ok")))
		binary.LittleEndian.PutUint32(reply[8:12], uint32(requestID))
		if _, err := conn.Write(reply); err != nil {
			return
		}
	}
}

// startProxy runs a proxy to upstream until the test ends; it returns
// the proxy's address.
func startProxy(t *testing.T, upstream string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	p := newProxy(upstream, slog.New(slog.DiscardHandler))
	go func() { done <- p.serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// dial connects to addr; reads fail after a while rather than hang.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

// roundTrip sends msg on conn and returns the responseTo of the reply.
func roundTrip(conn net.Conn, msg []byte) (int32, error) {
	if _, err := conn.Write(msg); err != nil {
		return 0, err
	}

	reply, err := readMessage(conn)
	if err != nil {
		return 0, err
	}
	return int32(binary.LittleEndian.Uint32(reply[8:12])), nil
}

func TestProxyDropsReplyToMoreToCome(t *testing.T) {
	addr := startProxy(t, fakeFerretDB(t, func(string) {}))
	conn := dial(t, addr)

	_, err := conn.Write(command(1, "insert", flagMoreToCome))
	if err != nil {
		t.Fatal(err)
	}

	got, err := roundTrip(conn, command(2, "find", 0))
	if err != nil || got != 2 {
		t.Errorf("reply answers request %d (%v), want 2", got, err)
	}
}

func TestProxyRunsWritesOneAtATime(t *testing.T) {
	var inFlight, most atomic.Int32
	addr := startProxy(t, fakeFerretDB(t, func(name string) {
		if name != "update" {
			return
		}
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); {
			m = most.Load()
		}
		// Give any write that overlaps this one time to arrive.
		time.Sleep(5 * time.Millisecond)
	}))

	var wg sync.WaitGroup
	for c := range 4 {
		conn := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				id := int32(c*100 + i)
				got, err := roundTrip(conn, command(id, "update", 0))
				if err != nil || got != id {
					t.Errorf("reply answers request %d (%v), want %d",
						got, err, id)
				}
			}
		}()
	}
	wg.Wait()

	if m := most.Load(); m != 1 {
		t.Errorf("%d writes ran at once, want 1", m)
	}
}

func TestProxyLetsReadsPassAWriteInFlight(t *testing.T) {
	writeArrived, readArrived := make(chan struct{}), make(chan struct{})
	addr := startProxy(t, fakeFerretDB(t, func(name string) {
		switch name {
		case "insert":
			// Finish the write only once a read got through; were reads
			// queued behind writes, the read would time out.
			close(writeArrived)
			<-readArrived
		case "find":
			close(readArrived)
		}
	}))
	writer, reader := dial(t, addr), dial(t, addr)

	if _, err := writer.Write(command(1, "insert", 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-writeArrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the write never reached FerretDB")
	}

	got, err := roundTrip(reader, command(2, "find", 0))
	if err != nil || got != 2 {
		t.Errorf("read reply answers request %d (%v), want 2", got, err)
	}
	if _, err := readMessage(writer); err != nil {
		t.Errorf("write reply: %v", err)
	}
}
