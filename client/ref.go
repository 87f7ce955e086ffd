package client

import (
	"fmt"
	"net"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage"
)

// Reference names a registry, a repository in it, and optionally a tag or a
// manifest digest: HOST[:PORT][/REPO[:TAG][@DIGEST]].
type Reference struct {
	// Host is the registry as typed (host[:port]); Docker Hub's names
	// (docker.io, index.docker.io) are kept as typed and mapped by APIHost.
	Host       string
	Repository string
	Tag        string
	Digest     digest.Digest
}

// dockerHubAPI is where Docker Hub answers the V2 API.
const dockerHubAPI = "registry-1.docker.io"

func isDockerHub(host string) bool {
	return host == "docker.io" || host == "index.docker.io" || host == dockerHubAPI
}

// ParseReference parses HOST[:PORT]/REPO[:TAG|@DIGEST]. The host is
// required: a CLI that quietly sends "team/app" to Docker Hub deletes in the
// wrong place. "https://" in front is accepted (people paste URLs) and
// dropped; whether plain HTTP may be used is decided by the host (loopback)
// or --insecure, never by the text.
func ParseReference(s string) (Reference, error) {
	in := s
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	s = strings.TrimSuffix(s, "/")
	if s == "" {
		return Reference{}, fmt.Errorf("empty reference: expected HOST[:PORT]/REPO[:TAG|@DIGEST]")
	}
	host, rest, _ := strings.Cut(s, "/")
	if err := validHost(host); err != nil {
		return Reference{}, fmt.Errorf("%q: %v; expected HOST[:PORT]/REPO[:TAG|@DIGEST], e.g. localhost:5000/team/app:v1", in, err)
	}
	r := Reference{Host: host}
	if rest == "" {
		return r, nil
	}
	if name, dgst, ok := strings.Cut(rest, "@"); ok {
		d, err := digest.Parse(dgst)
		if err != nil {
			return Reference{}, fmt.Errorf("%q: invalid digest %q: %v", in, dgst, err)
		}
		r.Digest, rest = d, name
	}
	// A tag follows the last ':' of the last path component.
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		r.Tag, rest = rest[i+1:], rest[:i]
		if !storage.ValidTag(r.Tag) {
			return Reference{}, fmt.Errorf("%q: invalid tag %q: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", in, r.Tag)
		}
	}
	if isDockerHub(host) && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	if err := storage.ValidateName(rest); err != nil {
		return Reference{}, fmt.Errorf("%q: invalid repository name %q: lower-case letters, digits and separators (. _ __ -), components joined by /", in, rest)
	}
	r.Repository = rest
	return r, nil
}

// validHost accepts what docker accepts as the registry part of a name:
// a name with a dot or a port, "localhost", or a bracketed IPv6 address.
func validHost(h string) error {
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return fmt.Errorf("invalid registry host %q", h)
		}
		name, port = h[1:end], strings.TrimPrefix(h[end+1:], ":")
		if net.ParseIP(name) == nil || (h[end+1:] != "" && !strings.HasPrefix(h[end+1:], ":")) {
			return fmt.Errorf("invalid registry host %q", h)
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		name, port = h[:i], h[i+1:]
		if name == "" {
			return fmt.Errorf("invalid registry host %q", h)
		}
	}
	if port != "" || strings.HasSuffix(h, ":") {
		if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return fmt.Errorf("invalid port in registry host %q", h)
		}
	}
	for _, c := range name {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == ':' && strings.HasPrefix(h, "["):
		default:
			return fmt.Errorf("invalid registry host %q", h)
		}
	}
	if !strings.HasPrefix(h, "[") && !strings.Contains(name, ".") && port == "" && name != "localhost" {
		return fmt.Errorf("%q is not a registry host (no dot, no port, not localhost)", h)
	}
	return nil
}

// String is the reference as HOST/REPO[:TAG][@DIGEST].
func (r Reference) String() string {
	s := r.Host
	if r.Repository != "" {
		s += "/" + r.Repository
	}
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + string(r.Digest)
	}
	return s
}

// Repo is the reference without tag and digest: HOST/REPO.
func (r Reference) Repo() Reference { return Reference{Host: r.Host, Repository: r.Repository} }

// WithDigest is the repository's manifest d.
func (r Reference) WithDigest(d digest.Digest) Reference {
	return Reference{Host: r.Host, Repository: r.Repository, Digest: d}
}

// WithTag is the repository's tag t.
func (r Reference) WithTag(t string) Reference {
	return Reference{Host: r.Host, Repository: r.Repository, Tag: t}
}

// Ref is what goes into /v2/REPO/manifests/<ref>: the digest when there is
// one (it pins the exact revision), else the tag, else "latest" as docker
// does.
func (r Reference) Ref() string {
	switch {
	case r.Digest != "":
		return string(r.Digest)
	case r.Tag != "":
		return r.Tag
	}
	return "latest"
}

// APIHost is the host[:port] that serves the V2 API for r.Host.
func (r Reference) APIHost() string {
	if isDockerHub(r.Host) {
		return dockerHubAPI
	}
	return r.Host
}

// IsLoopback reports whether host (host[:port]) is on this machine: docker
// allows plain HTTP to those without being told (127.0.0.0/8, ::1,
// localhost).
func IsLoopback(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
