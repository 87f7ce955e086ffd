// Package client is registryd's registry client: the V2 / OCI distribution
// API that every registry speaks, and registryd's admin extension API
// (api/admin, docs/admin-api.md) where a server offers it. The CLI
// (client/cli) is built on it; so could anything else that drives a
// registry.
//
// What it does for a caller:
//   - credentials the way docker, podman and crane find them (docker's
//     config.json with credsStore/credHelpers, podman's auth.json), through
//     go-containerregistry's authn keychain, and Basic or token auth through
//     its transport;
//   - plain HTTP only to loopback hosts unless Options.Insecure, as docker;
//   - pagination followed (catalog, tags), bodies read with limits, and
//     errors decoded into *Error with the OCI error codes;
//   - the admin API discovered per host (GET /v2/_registryd/v1; a 404 means
//     "not registryd", and callers fall back to V2), never assumed.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/registryd/registryd/errcode"
)

// Options configure a Client.
type Options struct {
	// Insecure allows plain HTTP and unverified TLS to any host. Without
	// it, plain HTTP is used only for loopback hosts.
	Insecure bool
	// CAFile is a PEM bundle of extra certificate authorities to trust.
	CAFile string
	// Keychain finds credentials; nil is authn.DefaultKeychain (docker's
	// config, its credential helpers, then podman's auth.json).
	Keychain authn.Keychain
	// UserAgent is sent with every request.
	UserAgent string
	// Transport is the base round tripper (tests); nil builds one from
	// Insecure and CAFile.
	Transport http.RoundTripper
}

// Client talks to registries. It is safe for concurrent use.
type Client struct {
	opts Options
	base http.RoundTripper

	mu         sync.Mutex
	transports map[string]*transportEntry // by host and scopes
	admin      map[string]*adminEntry     // by host
}

type transportEntry struct {
	once sync.Once
	rt   http.RoundTripper
	err  error
}

// New returns a Client.
func New(opts Options) (*Client, error) {
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "registryd"
	}
	base := opts.Transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if opts.CAFile != "" {
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			pem, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("--ca: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca %s: no PEM certificate in it", opts.CAFile)
			}
			t.TLSClientConfig.RootCAs = pool
		}
		if opts.Insecure {
			t.TLSClientConfig.InsecureSkipVerify = true
		}
		base = t
	}
	return &Client{
		opts:       opts,
		base:       &schemeGuard{inner: base, insecure: opts.Insecure},
		transports: map[string]*transportEntry{},
		admin:      map[string]*adminEntry{},
	}, nil
}

// schemeGuard refuses plain HTTP to a host that is neither loopback nor
// allowed by --insecure. go-containerregistry's ping tries http next to
// https for hosts it guesses are private (RFC 1918, *.local); docker does not,
// and neither do we: credentials would travel in the clear.
type schemeGuard struct {
	inner    http.RoundTripper
	insecure bool
}

func (g *schemeGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !g.insecure && !IsLoopback(r.URL.Host) {
		return nil, fmt.Errorf("refusing plain HTTP to %s (not a loopback host; --insecure allows it)", r.URL.Host)
	}
	return g.inner.RoundTrip(r)
}

// Scopes of the token a request needs (Docker's token spec); the registry's
// challenge may ask for more, which the transport then fetches.
func pullScope(repo string) string       { return "repository:" + repo + ":pull" }
func pushScope(repo string) string       { return "repository:" + repo + ":pull,push" }
func deleteScope(repo string) string     { return "repository:" + repo + ":pull,push,delete" }
func pullDeleteScope(repo string) string { return "repository:" + repo + ":pull,delete" }

const (
	catalogScope = "registry:catalog:*"
	adminScope   = "registry:catalog:admin"
)

// transport returns the authenticated round tripper for host with scopes,
// made once per (host, scopes): the handshake pings /v2/ and, for token
// auth, fetches a token for exactly these scopes.
func (c *Client) transport(ctx context.Context, host string, scopes ...string) (http.RoundTripper, error) {
	key := host + " " + strings.Join(scopes, " ")
	c.mu.Lock()
	e := c.transports[key]
	if e == nil {
		e = &transportEntry{}
		c.transports[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		e.rt, e.err = c.newTransport(ctx, host, scopes)
	})
	return e.rt, e.err
}

func (c *Client) newTransport(ctx context.Context, host string, scopes []string) (http.RoundTripper, error) {
	api := Reference{Host: host}.APIHost()
	var regOpts []name.Option
	if c.opts.Insecure || IsLoopback(api) {
		regOpts = append(regOpts, name.Insecure)
	}
	reg, err := name.NewRegistry(api, regOpts...)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", host, err)
	}
	auth, err := authn.Resolve(ctx, c.opts.Keychain, reg)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", host, err)
	}
	rt, err := transport.NewWithContext(ctx, reg, auth, transport.NewUserAgent(c.base, c.opts.UserAgent), scopes)
	if err != nil {
		if tlsErr := c.tlsError(ctx, api); tlsErr != nil {
			return nil, fmt.Errorf("%s: %w", host, tlsErr)
		}
		return nil, wrapTransportError(host, err)
	}
	return rt, nil
}

// tlsError is the TLS failure of a GET https://host/v2/, if that is what
// failed. The ping tries http next to https where plain HTTP is allowed,
// and reports the http attempt's failure ("400 Bad Request" from a TLS
// port); the certificate problem is what the user needs to read.
func (c *Client) tlsError(ctx context.Context, host string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/v2/", nil)
	if err != nil {
		return nil
	}
	resp, err := c.base.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		return nil
	}
	var certErr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &certErr) || errors.As(err, &unknown) || errors.As(err, &hostErr) || errors.As(err, &invalid) {
		return fmt.Errorf("%w (--ca FILE trusts a private CA; --insecure skips the check)", err)
	}
	return nil
}

// Error is a registry's answer that was not a success.
type Error struct {
	Method string
	URL    string // the path and query, without credentials
	Status int
	// Errors is the OCI error body, when the registry sent one.
	Errors []ErrorDetail
	// Body is the start of a body that was not an OCI error body.
	Body string
}

// ErrorDetail is one entry of an OCI error body.
type ErrorDetail struct {
	Code    errcode.Code `json:"code"`
	Message string       `json:"message"`
	Detail  any          `json:"detail,omitempty"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	for _, d := range e.Errors {
		fmt.Fprintf(&b, ": %s", d.Code)
		if d.Message != "" {
			fmt.Fprintf(&b, " (%s)", d.Message)
		}
	}
	if len(e.Errors) == 0 && e.Body != "" {
		fmt.Fprintf(&b, ": %s", e.Body)
	}
	switch e.Status {
	case http.StatusUnauthorized:
		b.WriteString("; log in with `registryd login HOST` (or docker login)")
	}
	return b.String()
}

// Has reports whether the registry answered with code c.
func (e *Error) Has(c errcode.Code) bool {
	return slices.ContainsFunc(e.Errors, func(d ErrorDetail) bool { return d.Code == c })
}

// IsNotFound reports whether err means that what was asked for does not
// exist: a 404, whatever the code (NAME_UNKNOWN, MANIFEST_UNKNOWN, ...).
func IsNotFound(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status == http.StatusNotFound
	}
	var nf *NotFoundError
	return errors.As(err, &nf)
}

// StatusOf is the HTTP status of a registry error, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// NotFoundError is something the client looked for and did not find, where
// the registry's answer alone does not say it (an empty tag list, say).
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string { return e.What + ": not found" }

// wrapTransportError turns go-containerregistry's transport errors (the
// ping and the token exchange) into *Error, so that a failed login is an
// exit status like any other 401.
func wrapTransportError(host string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		e := &Error{Method: "GET", URL: host + "/v2/", Status: te.StatusCode}
		if te.Request != nil {
			e.Method = te.Request.Method
			e.URL = te.Request.URL.Host + te.Request.URL.Path
		}
		for _, d := range te.Errors {
			e.Errors = append(e.Errors, ErrorDetail{Code: errcode.Code(d.Code), Message: d.Message})
		}
		return e
	}
	return fmt.Errorf("%s: %w", host, err)
}

// request is one call to a registry.
type request struct {
	method string
	host   string
	path   string // /v2/...
	query  url.Values
	header http.Header
	body   []byte
	scopes []string
	// ok lists the statuses that are a success; default 200.
	ok []int
}

// maxBody bounds what the client reads of a JSON answer (a tag list of a
// huge repository is a few MB).
const maxBody = 64 << 20

// do sends r and returns the response when its status is one of r.ok;
// otherwise the body is decoded into *Error and closed. The caller closes a
// returned body.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	rt, err := c.transport(ctx, r.host, r.scopes...)
	if err != nil {
		return nil, err
	}
	u := &url.URL{Scheme: "https", Host: Reference{Host: r.host}.APIHost(), Path: r.path}
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	return c.send(ctx, rt, r, u)
}

func (c *Client) send(ctx context.Context, rt http.RoundTripper, r request, u *url.URL) (*http.Response, error) {
	var body io.Reader
	if r.body != nil {
		body = strings.NewReader(string(r.body))
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.body != nil {
		req.ContentLength = int64(len(r.body))
	}
	resp, err := (&http.Client{Transport: rt, CheckRedirect: sameHostRedirect}).Do(req)
	if err != nil {
		return nil, err
	}
	ok := r.ok
	if ok == nil {
		ok = []int{http.StatusOK}
	}
	if slices.Contains(ok, resp.StatusCode) {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(r.method, u, resp)
}

// sameHostRedirect follows redirects (blob downloads from S3 and the like)
// but never more than ten.
func sameHostRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

func decodeError(method string, u *url.URL, resp *http.Response) error {
	e := &Error{Method: method, URL: u.Path, Status: resp.StatusCode}
	if u.RawQuery != "" {
		e.URL += "?" + u.RawQuery
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Errors []ErrorDetail `json:"errors"`
	}
	if json.Unmarshal(b, &body) == nil && len(body.Errors) > 0 {
		e.Errors = body.Errors
	} else if s := strings.TrimSpace(string(b)); s != "" {
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		e.Body = s
	}
	return e
}

// getJSON GETs r and decodes the JSON body into v; it returns the response
// headers (for Link).
func (c *Client) getJSON(ctx context.Context, r request, v any) (http.Header, error) {
	r.method = http.MethodGet
	if r.header == nil {
		r.header = http.Header{}
	}
	r.header.Set("Accept", "application/json")
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := decodeJSON(resp.Body, v); err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	return resp.Header, nil
}

func decodeJSON(r io.Reader, v any) error {
	b, err := readLimited(r, maxBody)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("invalid JSON in the answer: %w", err)
	}
	return nil
}

// readLimited reads all of r, failing if it holds more than limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("answer larger than %d bytes", limit)
	}
	return b, nil
}

// nextLink returns the path and query of the Link rel="next" header, or ""
// when there is no next page. Only the path and query are kept: the next
// page is asked of the same registry, with the same credentials, whatever
// host the header names.
func nextLink(h http.Header) (string, url.Values) {
	for _, l := range h.Values("Link") {
		for _, part := range strings.Split(l, ",") {
			part = strings.TrimSpace(part)
			if !strings.Contains(part, `rel="next"`) && !strings.Contains(part, "rel=next") {
				continue
			}
			start, end := strings.IndexByte(part, '<'), strings.IndexByte(part, '>')
			if start < 0 || end < start {
				continue
			}
			u, err := url.Parse(part[start+1 : end])
			if err != nil {
				continue
			}
			return u.Path, u.Query()
		}
	}
	return "", nil
}

// Ping checks that host answers the V2 API with the caller's credentials
// (what `registryd login` verifies before it stores them).
func (c *Client) Ping(ctx context.Context, host string) error {
	resp, err := c.do(ctx, request{method: http.MethodGet, host: host, path: "/v2/"})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
