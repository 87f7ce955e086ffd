package storage

import (
	"context"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// The fuzz targets of the storage layer: the manifest parser, and the
// grammars of names, tags, digests and references, which decide what
// becomes a storage path. Seeds are the f.Add calls and the files in
// testdata/fuzz/<target>; `go test` runs them all, `make fuzz` explores.

// The spec's grammars as regular expressions, the definition the hand
// written loops in names.go must agree with.
var (
	specName = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	specTag  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	// Only what registryd can verify: sha256 and sha512, lower-case hex.
	specDigest = regexp.MustCompile(`^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
)

// FuzzManifest: whatever a client sends as a manifest, the parser that
// admits it (parseManifest, at PUT) and the parsers that read it back
// (parseStored for GET, ParseReferences for garbage collection) agree. A
// reference the API checked but the collector did not see would be a
// layer deleted under a live image.
func FuzzManifest(f *testing.F) {
	d1, d2 := digest.FromString("a").String(), digest.FromString("b").String()
	for _, s := range []struct{ body, ct string }{
		{`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + d1 + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + d2 + `","size":1}]}`, MediaTypeOCIManifest},
		{`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + d1 + `","size":2},"layers":[]}`, ""},
		{`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"a/b","digest":"` + d1 + `","size":2},"layers":[{"mediaType":"a/b","digest":"` + d2 + `","size":1,"urls":["http://x"]}]}`, MediaTypeDockerManifest},
		{`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":2,"platform":{"os":"linux","architecture":"amd64"}}]}`, MediaTypeOCIIndex},
		{`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`, MediaTypeDockerList},
		{`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + d1 + `","size":2},"layers":[],"subject":{"mediaType":"a/b","digest":"` + d2 + `","size":3},"artifactType":"x/y"}`, MediaTypeOCIManifest},
		{`{"schemaVersion":2,"manifests":[],"config":null}`, MediaTypeOCIManifest},
		{`{"schemaVersion":1,"fsLayers":[{"blobSum":"` + d1 + `"}]}`, "application/vnd.docker.distribution.manifest.v1+prettyjws"},
		{`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:zz","size":-1}}`, ""},
		{`{"schemaVersion":2.0,"config":{}}`, ""},
		{`[]`, ""},
		{`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":null,"layers":null}`, ""},
		{`{"schemaVersion":2,"mediaType":"","config":{"mediaType":"a/b","digest":"` + d1 + `","size":2},"Layers":[{"mediaType":"a/b","digest":"` + d2 + `","size":1}]}`, ""},
		{`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + d1 + `","size":2},"layers":[],"layers":[{"mediaType":"a/b","digest":"` + d2 + `","size":1}]}`, ""},
	} {
		f.Add([]byte(s.body), s.ct)
	}
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		m, mt, err := parseManifest(body, ct)
		if err != nil {
			if e := errcode.From(err); e == nil || e.HTTPStatus() >= 500 {
				t.Fatalf("refused with %v: not a client error", err)
			}
			return
		}
		if !isManifestType(mt) && !isIndexType(mt) {
			t.Fatalf("accepted with media type %q", mt)
		}
		// What GET answers with, from the same bytes.
		_, stored, err := parseStored(body)
		if err != nil {
			t.Fatalf("accepted but not readable back: %v", err)
		}
		if m.MediaType != "" && stored != mt {
			t.Fatalf("stored as %q, read back as %q", mt, stored)
		}
		// What garbage collection keeps, from the same bytes.
		refs, err := ParseReferences(body)
		if err != nil {
			t.Fatalf("accepted but the collector cannot read it: %v", err)
		}
		var blobs, children []digest.Digest
		if isManifestType(mt) {
			blobs = append(blobs, m.Config.Digest)
			for _, l := range m.Layers {
				blobs = append(blobs, l.Digest)
			}
		}
		for _, c := range m.Manifests {
			children = append(children, c.Digest)
		}
		for _, d := range blobs {
			if !slices.Contains(refs.Blobs, d) {
				t.Fatalf("blob %s checked at PUT but not kept by the collector (it keeps %v)", d, refs.Blobs)
			}
		}
		for _, d := range children {
			if !slices.Contains(refs.Manifests, d) {
				t.Fatalf("child %s checked at PUT but not kept by the collector (it keeps %v)", d, refs.Manifests)
			}
		}
		if m.Subject != nil && refs.Subject != m.Subject.Digest {
			t.Fatalf("subject %s, the collector reads %q", m.Subject.Digest, refs.Subject)
		}
	})
}

// FuzzName: ValidateName is the spec's grammar, and every name it admits
// makes paths inside the repository's own directory.
func FuzzName(f *testing.F) {
	for _, s := range []string{"a", "library/ubuntu", "a/b/c", "a..b", "a__b", "a___b", "a--b", "a-", "-a", "a/", "/a", "a//b",
		"a/../b", "A", "a.b_c-d", "0", "a/_b", strings.Repeat("a", 256), strings.Repeat("a/", 100) + "a", "a\x00", "ä", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName(name)
		want := specName.MatchString(name) && len(name) <= MaxNameLength
		if (err == nil) != want {
			t.Fatalf("ValidateName(%q) = %v, the grammar says valid=%v", name, err, want)
		}
		if err != nil {
			if !errcode.Is(err, errcode.NameInvalid) {
				t.Fatalf("ValidateName(%q): %v, want NAME_INVALID", name, err)
			}
			return
		}
		d := digest.FromString(name)
		for _, p := range []string{repoPath(name), layerLinkPath(name, d), revisionLinkPath(name, d), tagCurrentPath(name, "t"), uploadDataPath(name, "0b2a41f4-8ab0-4a7d-9b0e-2b5f3c1e7a10")} {
			if !driver.ValidPath(p) {
				t.Fatalf("name %q: path %q is not a valid driver path", name, p)
			}
			if !strings.HasPrefix(p, reposRootPath+"/"+name+"/") && p != reposRootPath+"/"+name {
				t.Fatalf("name %q: path %q is outside the repository", name, p)
			}
		}
		// A name component is never one of the repository's own
		// directories (_layers, _manifests, _uploads).
		for _, c := range strings.Split(name, "/") {
			if strings.HasPrefix(c, "_") || c == "." || c == ".." {
				t.Fatalf("name %q has component %q", name, c)
			}
		}
	})
}

// FuzzTag: ValidTag is the spec's grammar, and a tag is one path component.
func FuzzTag(f *testing.F) {
	for _, s := range []string{"latest", "v1.0.0", "_x", ".x", "-x", "..", ".", "a/b", "a:b", strings.Repeat("t", 128), strings.Repeat("t", 129), "A_b-C.d", "", "t\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		ok := ValidTag(tag)
		if ok != specTag.MatchString(tag) {
			t.Fatalf("ValidTag(%q) = %v, the grammar says %v", tag, ok, !ok)
		}
		if (ValidateTag(tag) == nil) != ok {
			t.Fatalf("ValidateTag and ValidTag disagree on %q", tag)
		}
		if !ok {
			return
		}
		if IsDigest(tag) {
			t.Fatalf("tag %q taken for a digest", tag)
		}
		p := tagCurrentPath("r", tag)
		if !driver.ValidPath(p) || path.Base(tagDir("r", tag)) != tag || path.Dir(tagDir("r", tag)) != tagsRoot("r") {
			t.Fatalf("tag %q makes path %q", tag, p)
		}
	})
}

// FuzzDigest: ParseDigest admits exactly the canonical sha256 and sha512
// digests, and each names one blob directory.
func FuzzDigest(f *testing.F) {
	for _, s := range []string{
		digest.FromString("x").String(), digest.SHA512.FromString("x").String(),
		"sha256:" + strings.Repeat("A", 64), "sha256:" + strings.Repeat("a", 63), "sha384:" + strings.Repeat("a", 96),
		"md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:../../etc/passwd", "sha256:", ":abc", "sha256+b64:abc=",
		"SHA256:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("a", 64) + "\n", "sha256:" + strings.Repeat("a", 64) + "/..",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if ok := specDigest.MatchString(s); (err == nil) != ok {
			t.Fatalf("ParseDigest(%q) = %v, want valid=%v", s, err, ok)
		}
		if err != nil {
			if !errcode.Is(err, errcode.DigestInvalid) {
				t.Fatalf("ParseDigest(%q): %v, want DIGEST_INVALID", s, err)
			}
			return
		}
		if d.String() != s || !IsDigest(s) {
			t.Fatalf("ParseDigest(%q) = %q", s, d)
		}
		p := blobDataPath(d)
		if !driver.ValidPath(p) || path.Dir(path.Dir(path.Dir(path.Dir(p)))) != blobsRoot() {
			t.Fatalf("digest %q: blob path %q", s, p)
		}
		back, ok := digestFromDirs(d.Algorithm().String(), d.Encoded())
		if !ok || back != d {
			t.Fatalf("digest %q does not come back from its directories: %q", s, back)
		}
	})
}

// fuzzRepo is one repository shared by the iterations of FuzzReference,
// holding one tagged image.
var fuzzRepo = sync.OnceValues(func() (*Repository, *Manifest) {
	ctx := context.Background()
	reg := New(inmemory.New(), Options{})
	repo, _ := reg.Repository("fuzz/ref")
	put := func(b []byte) digest.Digest {
		up, err := repo.NewUpload(ctx, "")
		if err != nil {
			panic(err)
		}
		d := digest.FromBytes(b)
		if _, err := up.Commit(ctx, strings.NewReader(string(b)), -1, d); err != nil {
			panic(err)
		}
		return d
	}
	cfg := put([]byte(`{}`))
	m, err := repo.PutManifest(ctx, "latest", MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"mediaType":"`+MediaTypeOCIManifest+`","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"`+cfg.String()+`","size":2},"layers":[]}`), nil)
	if err != nil {
		panic(err)
	}
	return repo, m
})

// FuzzReference: any reference a client puts in /manifests/<reference>
// resolves to the one stored image or to a client error, never to a
// server error or another manifest.
func FuzzReference(f *testing.F) {
	_, m := fuzzRepo()
	for _, s := range []string{"latest", m.Digest.String(), "LATEST", "latest/..", "../latest", "sha256:x", digest.FromString("y").String(),
		"sha512:" + strings.Repeat("0", 128), "a:b", ":", "", "..", strings.Repeat("x", 200), m.Digest.String() + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		repo, m := fuzzRepo()
		ctx := context.Background()
		got, err := repo.GetManifest(ctx, ref)
		if err != nil {
			e := errcode.From(err)
			if e == nil || e.HTTPStatus() >= 500 {
				t.Fatalf("GetManifest(%q): %v", ref, err)
			}
			if e.HTTPStatus() != http.StatusNotFound && e.HTTPStatus() != http.StatusBadRequest {
				t.Fatalf("GetManifest(%q): status %d", ref, e.HTTPStatus())
			}
			return
		}
		if ref != "latest" && ref != m.Digest.String() {
			t.Fatalf("GetManifest(%q) found %s", ref, got.Digest)
		}
		if got.Digest != m.Digest {
			t.Fatalf("GetManifest(%q) = %s, want %s", ref, got.Digest, m.Digest)
		}
	})
}
