package storage

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
)

// The grammars of the distribution specification. Everything a client sends
// that becomes part of a storage path is checked against one of these first.
var (
	// <name>: path components of [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* joined by "/".
	// upload ids are the UUIDs registryd (and the reference) hand out.
	uploadIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// MaxNameLength bounds a repository name. The spec suggests 255 for the
// whole name with the registry host; we allow 255 for the path part alone.
const MaxNameLength = 255

// ValidateName checks a repository name against the spec's grammar.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLength {
		return errcode.Newf(errcode.NameInvalid, "invalid repository name %q: length must be 1 to %d", clip(name), MaxNameLength).WithDetail(map[string]string{"name": clip(name)})
	}
	for _, c := range strings.Split(name, "/") {
		if !validComponent(c) {
			return errcode.Newf(errcode.NameInvalid, "invalid repository name %q: component %q must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*", clip(name), clip(c)).WithDetail(map[string]string{"name": clip(name)})
		}
	}
	return nil
}

// validComponent reports whether s is a name component,
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*. A loop, not a regular expression:
// the catalog checks every directory it lists, and the expression cost
// more than the rest of a cached walk.
func validComponent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); {
		if !lowerAlnum(s[i]) {
			return false // a separator not between alphanumerics
		}
		for i < len(s) && lowerAlnum(s[i]) {
			i++
		}
		if i == len(s) {
			return true
		}
		switch s[i] {
		case '.':
			i++
		case '_':
			if i++; i < len(s) && s[i] == '_' {
				i++
			}
		case '-':
			for i < len(s) && s[i] == '-' {
				i++
			}
		default:
			return false
		}
		if i == len(s) {
			return false
		}
	}
	return true
}

func lowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// ValidTag reports whether s is a tag, [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}:
// a loop, as validComponent, since tags/list checks every tag listed.
func ValidTag(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidateTag checks a tag against the spec's grammar.
func ValidateTag(tag string) error {
	if !ValidTag(tag) {
		return errcode.Newf(errcode.ManifestInvalid, "invalid tag %q: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", clip(tag)).WithDetail(map[string]string{"tag": clip(tag)})
	}
	return nil
}

// ValidUploadID reports whether id has the form of an upload id.
func ValidUploadID(id string) bool { return uploadIDRE.MatchString(id) }

// ParseDigest parses and validates a digest, for the algorithms registryd
// can verify (sha256, sha512).
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", errcode.Newf(errcode.DigestInvalid, "invalid digest %q: %v", clip(s), err).WithDetail(map[string]string{"digest": clip(s)})
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
	default:
		return "", errcode.Newf(errcode.DigestInvalid, "unsupported digest algorithm %q", d.Algorithm()).WithDetail(map[string]string{"digest": clip(s)})
	}
	return d, nil
}

// IsDigest reports whether a manifest reference is a digest rather than a tag:
// a tag cannot contain ':'.
func IsDigest(ref string) bool { return strings.Contains(ref, ":") }

// clip keeps client input echoed in messages short.
func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
