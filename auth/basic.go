package auth

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
)

// maxAuthorizationBasic bounds the Authorization header we are willing to
// decode for Basic credentials. Real credentials are far smaller; anything
// larger is refused before any work is done on it.
const maxAuthorizationBasic = 8 << 10

// maxAuthorizationBearer bounds a bearer token. Tokens that carry an x5c
// certificate chain run to a few KiB, so the bound is looser than Basic's.
const maxAuthorizationBearer = 64 << 10

// Errors of credential parsing. All of them end in a 401: a client that
// sends garbage learns it must authenticate, never that the server broke.
var (
	errNoCredentials    = errors.New("no credentials")
	errMalformedBasic   = errors.New("malformed Basic credentials")
	errOversizedHeader  = errors.New("authorization header too large")
	errMultipleHeaders  = errors.New("more than one authorization header")
	errNotBasic         = errors.New("authorization scheme is not Basic")
	errNotBearer        = errors.New("authorization scheme is not Bearer")
	errMalformedBearer  = errors.New("malformed Bearer token")
	errEmptyUserOrColon = errors.New("basic credentials lack a user name or the ':' separator")
)

// authorizationHeader returns the single Authorization header of h, or
// errNoCredentials. Two headers are refused rather than picking one: which
// one a proxy or the client meant is not ours to guess.
func authorizationHeader(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", errNoCredentials
	case 1:
	default:
		return "", errMultipleHeaders
	}
	if strings.TrimSpace(vals[0]) == "" {
		return "", errNoCredentials
	}
	return vals[0], nil
}

// splitScheme splits "Scheme credentials" at the first run of spaces. The
// scheme is compared case-insensitively (RFC 9110 section 11.1).
func splitScheme(v string) (scheme, rest string) {
	v = strings.TrimLeft(v, " \t")
	i := strings.IndexAny(v, " \t")
	if i < 0 {
		return v, ""
	}
	return v[:i], strings.Trim(v[i:], " \t")
}

// parseBasic decodes the value of an Authorization header holding Basic
// credentials (RFC 7617). It never panics and bounds its work by the size
// check, whatever the input. The password may contain ':'; the user name
// may not (the first ':' separates them) and must not be empty or contain
// control characters, which no htpasswd user name can hold.
func parseBasic(v string) (user, password string, err error) {
	if len(v) > maxAuthorizationBasic {
		return "", "", errOversizedHeader
	}
	scheme, b64 := splitScheme(v)
	if !strings.EqualFold(scheme, "basic") {
		return "", "", errNotBasic
	}
	if b64 == "" || strings.ContainsAny(b64, " \t") {
		return "", "", errMalformedBasic
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		// Some clients drop the padding; accept that, nothing else.
		raw, err = base64.RawStdEncoding.Strict().DecodeString(b64)
		if err != nil {
			return "", "", errMalformedBasic
		}
	}
	user, password, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" {
		return "", "", errEmptyUserOrColon
	}
	for i := 0; i < len(user); i++ {
		if c := user[i]; c < 0x20 || c == 0x7f {
			return "", "", errMalformedBasic
		}
	}
	return user, password, nil
}

// parseBearer extracts the token of "Authorization: Bearer <token>". The
// token is checked only for shape here (three base64url segments are left
// to the JWT parser); the size bound keeps hostile input cheap.
func parseBearer(v string) (string, error) {
	if len(v) > maxAuthorizationBearer {
		return "", errOversizedHeader
	}
	scheme, tok := splitScheme(v)
	if !strings.EqualFold(scheme, "bearer") {
		return "", errNotBearer
	}
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", errMalformedBearer
	}
	return tok, nil
}
