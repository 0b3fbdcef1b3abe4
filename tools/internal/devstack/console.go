package devstack

import (
	"context"
	"fmt"
	"net"
	"slices"

	"github.com/sagasuite/sagasuite/tools/internal/suite"
	"github.com/sagasuite/sagasuite/web"
)

// DefaultConsoleAddr is where `sagactl dev` serves the web console.
const DefaultConsoleAddr = "127.0.0.1:8090"

// DefaultConsoleAPIs are the services' browser (Connect, gRPC-Web) base URLs
// the console is told about: each service's own listener beside its gRPC
// port, allowing the console's origin by CORS.
var DefaultConsoleAPIs = suite.Addrs{Order: "http://127.0.0.1:8091", Inventory: "http://127.0.0.1:8092",
	Payment: "http://127.0.0.1:8093", Shipping: "http://127.0.0.1:8094", Notification: "http://127.0.0.1:8095"}

// consoleOrigins are the origins the console served on addr loads from, so
// the browser listeners allow them by CORS: moving the console with
// --console-listen moves its origin too. The default console (or none, or a
// port 0 not known yet) keeps DefaultWebOrigins.
func consoleOrigins(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || addr == DefaultConsoleAddr || port == "0" {
		return slices.Clone(DefaultWebOrigins)
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || (ip != nil && ip.IsUnspecified()): // every interface: this machine's names for it
		return []string{"http://" + net.JoinHostPort("127.0.0.1", port), "http://" + net.JoinHostPort("localhost", port)}
	case ip != nil && ip.IsLoopback(): // a browser here may name it localhost as well
		return []string{"http://" + addr, "http://" + net.JoinHostPort("localhost", port)}
	}
	return []string{"http://" + addr}
}

// startConsole serves the embedded console (package web) on opts.Console,
// with /config.json naming opts.ConsoleAPIs, else the stack's own web
// listeners, else DefaultConsoleAPIs.
func (s *Stack) startConsole(ctx context.Context, opts Options) error {
	apis := opts.ConsoleAPIs
	for _, name := range suite.Services {
		switch {
		case apis.Of(name) != "":
		case s.Web.Of(name) != "": // the listener this stack really opened (":0" in tests)
			apis.Set(name, "http://"+s.Web.Of(name))
		default:
			apis.Set(name, DefaultConsoleAPIs.Of(name))
		}
	}
	var ln net.Listener
	var err error
	if _, port, perr := net.SplitHostPort(opts.Console); perr == nil && port == "0" {
		ln, err = net.Listen("tcp", opts.Console)
	} else {
		ln, err = listenWhenFree(ctx, opts.Console, opts.LogOutput)
	}
	if err != nil {
		return fmt.Errorf("console address %s: %w (choose another with --console-listen, or none with --console-listen '')", opts.Console, err)
	}
	srv, err := web.Serve(ln, web.Services{Order: apis.Order, Inventory: apis.Inventory, Payment: apis.Payment,
		Shipping: apis.Shipping, Notification: apis.Notification})
	if err != nil {
		ln.Close()
		return err
	}
	s.ConsoleURL = srv.URL
	s.stops = append(s.stops, srv.Close)
	return nil
}
