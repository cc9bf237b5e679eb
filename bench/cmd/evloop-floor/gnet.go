//go:build linux

package main

import (
	"context"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
)

// gnetFloor serves the floor's answers on gnet v2: one event loop for the
// listeners and every connection, locked to its thread, as the
// hand-written loop is.
type gnetFloor struct {
	gnet.BuiltinEventEngine
	a   *answers
	out []byte // scratch for one batch of answers; gnet copies what it cannot write at once
	eng chan gnet.Engine
}

func (g *gnetFloor) OnBoot(e gnet.Engine) gnet.Action { g.eng <- e; return gnet.None }

func (g *gnetFloor) OnTraffic(c gnet.Conn) gnet.Action {
	in, _ := c.Peek(-1)
	used, out, closeConn := g.a.serve(in, g.out[:0], false)
	g.out = out
	if used > 0 {
		c.Discard(used) // Discard(0) would discard everything
	}
	if len(out) > 0 {
		if _, err := c.Write(out); err != nil {
			return gnet.Close
		}
	}
	if closeConn {
		return gnet.Close
	}
	return gnet.None
}

func (g *gnetFloor) OnTick() (time.Duration, gnet.Action) {
	g.a.update(time.Now())
	return time.Second, gnet.None
}

// runGnet starts gnet on addrs (host:port or unix:PATH) and returns what
// stops it.
func runGnet(a *answers, addrs []string) (stop func(), err error) {
	g := &gnetFloor{a: a, eng: make(chan gnet.Engine, 1)}
	var urls []string
	for _, ad := range addrs {
		if len(ad) > 5 && ad[:5] == "unix:" {
			urls = append(urls, "unix://"+ad[5:])
		} else {
			urls = append(urls, "tcp://"+ad)
		}
	}
	errc := make(chan error, 1)
	go func() {
		errc <- gnet.Rotate(g, urls, gnet.WithMulticore(false), gnet.WithNumEventLoop(1), gnet.WithLockOSThread(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithReuseAddr(true), gnet.WithTicker(true), gnet.WithLogLevel(logging.ErrorLevel))
	}()
	select {
	case e := <-g.eng:
		return func() { e.Stop(context.Background()) }, nil
	case err := <-errc:
		return nil, err
	}
}
