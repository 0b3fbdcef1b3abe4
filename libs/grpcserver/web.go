package grpcserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	connectcors "connectrpc.com/cors"
	"connectrpc.com/vanguard"
	"connectrpc.com/vanguard/vanguardgrpc"

	"github.com/sagasuite/sagasuite/libs/config"
)

// Web is the optional browser listener: gRPC-Web and the Connect protocol
// (JSON and binary), transcoded by vanguard into calls on the very same
// grpc.Server, so every interceptor (recovery, logging, auth, validation,
// the stream drain) and handler applies unchanged.
//
// It has its own port rather than sharing the gRPC one: a web call enters
// grpc-go through ServeHTTP, which ignores the server options limits.go
// relies on (keepalive enforcement, MaxConcurrentStreams, connection
// idle/age), so a shared port would need them rebuilt on net/http anyway, and
// telling native gRPC from browser traffic on one TLS port (ALPN h2 for
// both) would take content sniffing. Here net/http carries the bounds
// itself (webServer).
type Web struct {
	// Addr is the TCP address to listen on, e.g. ":8091" or "127.0.0.1:0".
	Addr string
	// AllowedOrigins are the exact origins (config.CheckWebOrigin) whose
	// pages may call; a request from any other origin gets no CORS headers,
	// so the browser withholds the answer from the page.
	AllowedOrigins []string
	// TLS, when set, makes the listener speak TLS only (HTTP/2 and
	// HTTP/1.1 by ALPN); nil: plaintext HTTP/1.1 and h2c.
	TLS *tls.Config
}

// webReadHeaderTimeout bounds how long a client may take to send a
// request's headers (slowloris); bodies and streams are bounded by the
// message limits and the handlers' own deadlines instead.
const webReadHeaderTimeout = 10 * time.Second

// webMaxHeaderBytes bounds a request's headers: a token and a few Connect
// headers fit in a few KiB.
const webMaxHeaderBytes = 64 << 10

// newWebServer builds the HTTP server of the browser listener in front of
// grpcServer's handlers.
func (s *Server) newWebServer(web Web, limits Limits) (*http.Server, error) {
	for _, origin := range web.AllowedOrigins {
		if err := config.CheckWebOrigin(origin); err != nil {
			return nil, fmt.Errorf("grpcserver: web allowed origin: %w", err)
		}
	}
	limits = limits.withDefaults()
	transcoder, err := vanguardgrpc.NewTranscoder(s.grpc, vanguard.WithDefaultServiceOptions(
		// What vanguard buffers to transcode one message (Connect unary
		// bodies, JSON) is bounded like a native request.
		vanguard.WithMaxMessageBufferBytes(uint32(max(limits.MaxRecvMsgBytes, limits.MaxSendMsgBytes))),
		vanguard.WithMaxGetURLBytes(uint32(min(limits.MaxRecvMsgBytes, 64<<10))),
	))
	if err != nil {
		return nil, fmt.Errorf("grpcserver: web transcoder: %w", err)
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	if web.TLS != nil {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetUnencryptedHTTP2(true) // h2c, for non-browser clients
	}
	srv := &http.Server{
		Handler:           withCORS(web.AllowedOrigins, connectUnaryByDefault(transcoder)),
		Protocols:         protocols,
		TLSConfig:         web.TLS,
		ReadHeaderTimeout: webReadHeaderTimeout,
		MaxHeaderBytes:    webMaxHeaderBytes,
		IdleTimeout:       limits.MaxConnectionIdle,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: int(limits.MaxConcurrentStreams),
			// Answers and pings as the native listener's keepalive does.
			SendPingTimeout: limits.KeepaliveTime,
			PingTimeout:     limits.KeepaliveTimeout,
		},
	}
	if web.TLS != nil {
		cfg := web.TLS.Clone()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		srv.TLSConfig = cfg
	}
	return srv, nil
}

// corsAllowedHeaders are the request headers a page may send: the ones
// Connect and gRPC-Web clients use, plus the bearer token.
var corsAllowedHeaders = strings.Join(append(connectcors.AllowedHeaders(), "Authorization"), ", ")

// corsExposedHeaders are the response headers a page may read: the
// gRPC-Web status trailers-in-headers and Connect's unary trailers.
var corsExposedHeaders = strings.Join(append(connectcors.ExposedHeaders(), "Trailer-Grpc-Status", "Trailer-Grpc-Message"), ", ")

var corsAllowedMethods = strings.Join(connectcors.AllowedMethods(), ", ")

// corsMaxAge lets a browser cache a preflight answer (2 hours is Chromium's cap).
const corsMaxAge = "7200"

// withCORS answers preflights and marks answers for the allowed origins;
// a request from another origin passes through without CORS headers (a
// non-browser client sends no Origin at all), so the browser keeps the
// answer from the page. Tokens travel in the Authorization header, never
// cookies, so credentials are not allowed.
func withCORS(allowed []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		h.Add("Vary", "Origin")
		ok := origin != "" && slices.Contains(allowed, origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if ok {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Allow-Methods", corsAllowedMethods)
				h.Set("Access-Control-Allow-Headers", corsAllowedHeaders)
				h.Set("Access-Control-Max-Age", corsMaxAge)
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", corsExposedHeaders)
		}
		next.ServeHTTP(w, r)
	})
}

// connectUnaryByDefault marks a POST of application/json or
// application/proto without Connect-Protocol-Version as the Connect unary
// call it can only be: vanguard would take it for REST, and our protos map
// no REST routes, so curl users would get a bare 404. Connect's own
// servers accept such calls too; the header stays optional.
func connectUnaryByDefault(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Header.Get("Connect-Protocol-Version") == "" {
			mediaType, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
			switch strings.TrimSpace(strings.ToLower(mediaType)) {
			case "application/json", "application/proto":
				r.Header.Set("Connect-Protocol-Version", "1")
			}
		}
		next.ServeHTTP(w, r)
	})
}

// WebAddr is where the browser listener listens, or nil without one.
func (s *Server) WebAddr() net.Addr {
	if s.webListener == nil {
		return nil
	}
	return s.webListener.Addr()
}

// serveWeb serves the browser listener until it is shut down; it returns
// nil after Shutdown, or the error that ended serving.
func (s *Server) serveWeb() error {
	var err error
	if s.web.TLSConfig != nil {
		err = s.web.ServeTLS(s.webListener, "", "")
	} else {
		err = s.web.Serve(s.webListener)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("grpcserver: web serve on %s: %w", s.webListener.Addr(), err)
}

// shutdownWeb stops the browser listener by deadline: no new requests, and
// calls in flight (whose streams the drain has told to end) may finish.
// It runs before the gRPC server's GracefulStop, which would otherwise cut
// them: grpc-go closes every ServeHTTP call when it drains.
func (s *Server) shutdownWeb(deadline time.Time) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := s.web.Shutdown(ctx); err != nil {
		s.logger.Warn("web listener graceful stop timed out; cutting open calls", "error", err)
		s.web.Close()
	}
}

// listenWeb builds the browser listener's server and starts listening, so
// WebAddr is known before Serve.
func (s *Server) listenWeb(web Web, limits Limits) error {
	srv, err := s.newWebServer(web, limits)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", web.Addr)
	if err != nil {
		return fmt.Errorf("grpcserver: web listen on %q: %w", web.Addr, err)
	}
	s.web, s.webListener = srv, lis
	return nil
}
