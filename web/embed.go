// Package web serves the browser console: the bundle in dist/ (built by
// `make web`, committed so Go builds need no npm) and a /config.json telling
// the page where each service answers Connect and gRPC-Web.
package web

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// Services are the five services' browser base URLs (e.g. http://127.0.0.1:8091).
type Services struct {
	Order        string `json:"order"`
	Inventory    string `json:"inventory"`
	Payment      string `json:"payment"`
	Shipping     string `json:"shipping"`
	Notification string `json:"notification"`
}

// each lists name and URL in a fixed order, so errors and headers are stable.
func (s Services) each() [][2]string {
	return [][2]string{{"order", s.Order}, {"inventory", s.Inventory}, {"payment", s.Payment}, {"shipping", s.Shipping}, {"notification", s.Notification}}
}

// Validate says which URL is missing or not an absolute http(s) URL.
func (s Services) Validate() error {
	var errs []error
	for _, svc := range s.each() {
		name, raw := svc[0], svc[1]
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("console: %s service URL %q: want http(s)://host:port", name, raw))
		}
	}
	return errors.Join(errs...)
}

// Handler serves index.html at /, the bundle's files, and /config.json. The
// Content-Security-Policy lets the page talk to its own origin and the five
// services only.
func Handler(services Services) (http.Handler, error) {
	if err := services.Validate(); err != nil {
		return nil, err
	}
	config, err := json.Marshal(struct {
		Services Services `json:"services"`
	}{services})
	if err != nil {
		return nil, err
	}
	origins := []string{"'self'"}
	for _, svc := range services.each() {
		u, _ := url.Parse(svc[1]) // checked by Validate
		if origin := u.Scheme + "://" + u.Host; !slices.Contains(origins, origin) {
			origins = append(origins, origin)
		}
	}
	return handler(func(*http.Request) ([]byte, error) { return config, nil }, origins)
}

// ServicePathPrefix is where, in same-origin mode, each service's APIs are
// found: /config.json names <origin>/api/<service> as that service's base URL,
// so the page calls e.g. /api/payment/sagasuite.ops.v1.OperationsService/…
// and the server forwards it to payment's browser listener without the
// prefix. A prefix per service is needed because some APIs (the operations
// API) are served by every service under the same method path.
const ServicePathPrefix = "/api/"

// SameOriginHandler is Handler for a server that also forwards
// ServicePathPrefix + "<service>/…" to each service, as tools/cmd/console does:
// /config.json names the origin the page was loaded from, with that prefix,
// for every service, so the browser talks to one origin and needs no CORS.
// The origin is the request's Host, with https when the request came over
// TLS or a proxy in front says so (X-Forwarded-Proto), since an Ingress
// usually ends TLS before the console.
func SameOriginHandler() (http.Handler, error) {
	return handler(func(r *http.Request) ([]byte, error) {
		scheme := "http"
		if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
			scheme = "https"
		}
		origin := scheme + "://" + r.Host
		if u, err := url.Parse(origin); err != nil || u.Host != r.Host || r.Host == "" {
			return nil, fmt.Errorf("console: request host %q is not a host[:port]", r.Host)
		}
		base := origin + ServicePathPrefix
		services := Services{base + "order", base + "inventory", base + "payment", base + "shipping", base + "notification"}
		return json.Marshal(struct {
			Services Services `json:"services"`
		}{services})
	}, []string{"'self'"})
}

// handler serves the bundle and the /config.json config returns for a
// request, with a CSP whose connect-src is connectSrc.
func handler(config func(*http.Request) ([]byte, error), connectSrc []string) (http.Handler, error) {
	files, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, err
	}
	csp := "default-src 'self'; connect-src " + strings.Join(connectSrc, " ") + "; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
	static := http.FileServerFS(files)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		body, err := config(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		// A bundle rebuilt under a running stack must not be served stale.
		w.Header().Set("Cache-Control", "no-cache")
		static.ServeHTTP(w, r)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		mux.ServeHTTP(w, r)
	}), nil
}

// Server is the console listening on one address.
type Server struct {
	// URL is where to open it, e.g. http://127.0.0.1:8090/.
	URL  string
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Serve serves the console on ln until Close.
func Serve(ln net.Listener, services Services) (*Server, error) {
	h, err := Handler(services)
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + ln.Addr().String() + "/", ln: ln, done: make(chan error, 1),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Close stops the server and waits for it to return.
func (s *Server) Close() error {
	return errors.Join(s.srv.Close(), <-s.done)
}
