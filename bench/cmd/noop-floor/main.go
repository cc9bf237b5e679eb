// Command noop-floor is the floor of keygate's own stack: a fasthttp
// server, configured like keygate's check listener, that reads each
// request and answers a fixed 200 with a JSON body of the length of
// keygate's allowed answer, deciding nothing and logging nothing. What a
// load run gets from it is the most keygate could get on that machine,
// transport and load generator; keygate's figures are given as a ratio to
// it.
//
//	noop-floor -addr 127.0.0.1:8082 -unix /tmp/floor.sock
//
// It listens on -addr (TCP) and, with -unix, on that Unix-domain socket
// too, with the same handler.
package main

import (
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// body has the length of keygate's allowed /v1/check answer for the load
// run's keys (ids of 20 characters, names "bench-NNN", an entry id).
var body = []byte(`{"allowed":true,"key_id":"key_AAAAAAAAAAAAAAAA","key_name":"bench-123","entry_id":"ent_AAAAAAAAAAAAAAAA"}`)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "TCP listen address")
	sock := flag.String("unix", "", "also listen on this Unix-domain socket")
	flag.Parse()
	h := func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}
	// keygate's check listener settings (server.httpServer).
	srv := &fasthttp.Server{Handler: h, Name: "keygate", ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		IdleTimeout: 60 * time.Second, ReadBufferSize: 8 << 10, MaxRequestBodySize: 64 << 10, DisablePreParseMultipartForm: true}
	lns := []net.Listener{}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	lns = append(lns, ln)
	if *sock != "" {
		os.Remove(*sock)
		ln, err := net.Listen("unix", *sock)
		if err != nil {
			log.Fatal(err)
		}
		lns = append(lns, ln)
	}
	for _, ln := range lns {
		go func() { log.Print(srv.Serve(ln)) }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	srv.Shutdown()
}
