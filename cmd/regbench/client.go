package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
)

var httpClient = &http.Client{
	Transport: &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
	},
}

const manifestType = "application/vnd.oci.image.manifest.v1+json"

func do(req *http.Request, want int) (*http.Response, error) {
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s (want %d): %s", req.Method, req.URL.Path, resp.Status, want, b)
	}
	return resp, nil
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// startUpload POSTs an upload and returns its absolute location.
func startUpload(base, repo string) (*url.URL, error) {
	req, _ := http.NewRequest("POST", base+"/v2/"+repo+"/blobs/uploads/", nil)
	resp, err := do(req, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	drain(resp)
	return location(base, resp)
}

func location(base string, resp *http.Response) (*url.URL, error) {
	b, _ := url.Parse(base)
	l, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return nil, err
	}
	return b.ResolveReference(l), nil
}

func withDigest(u *url.URL, d digest.Digest) string {
	q := u.Query()
	q.Set("digest", d.String())
	v := *u
	v.RawQuery = q.Encode()
	return v.String()
}

// pushMonolithic uploads a blob with POST then one PUT carrying the body.
func pushMonolithic(base, repo string, body io.Reader, size int64, d digest.Digest) error {
	u, err := startUpload(base, repo)
	if err != nil {
		return err
	}
	req, _ := http.NewRequest("PUT", withDigest(u, d), body)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// pushChunked uploads a blob with POST, PATCHes of chunk bytes, empty PUT.
func pushChunked(base, repo string, body io.Reader, size, chunk int64, d digest.Digest) error {
	u, err := startUpload(base, repo)
	if err != nil {
		return err
	}
	for off := int64(0); off < size; {
		n := min(chunk, size-off)
		req, _ := http.NewRequest("PATCH", u.String(), io.LimitReader(body, n))
		req.ContentLength = n
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+n-1))
		resp, err := do(req, http.StatusAccepted)
		if err != nil {
			return err
		}
		drain(resp)
		if u, err = location(base, resp); err != nil {
			return err
		}
		off += n
	}
	req, _ := http.NewRequest("PUT", withDigest(u, d), nil)
	resp, err := do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// pullBlob GETs a blob and checks its length and digest.
func pullBlob(base, repo string, d digest.Digest, size int64) error {
	req, _ := http.NewRequest("GET", base+"/v2/"+repo+"/blobs/"+d.String(), nil)
	resp, err := do(req, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, resp.Body, make([]byte, 1<<20))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("pulled %d bytes, want %d", n, size)
	}
	if got := digest.NewDigest(digest.SHA256, h); got != d {
		return fmt.Errorf("pulled digest %s, want %s", got, d)
	}
	return nil
}

func pushSmallBlob(base, repo string, b []byte) (digest.Digest, error) {
	d := digest.FromBytes(b)
	return d, pushMonolithic(base, repo, bytes.NewReader(b), int64(len(b)), d)
}

func putManifest(base, repo, ref string, m []byte) error {
	req, _ := http.NewRequest("PUT", base+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(m))
	req.Header.Set("Content-Type", manifestType)
	resp, err := do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// manifestJSON is an OCI image manifest (with mediaType, which every server
// reads) for a config and layers of the given digests and sizes.
func manifestJSON(cfg digest.Digest, cfgSize int, layers []digest.Digest, layerSizes []int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[`,
		manifestType, cfg, cfgSize)
	for i, l := range layers {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}`, l, layerSizes[i])
	}
	b.WriteString("]}")
	return b.Bytes()
}

// smallImage returns the config and two 4 KiB layers of image number i
// (distinct for distinct (seed, i)).
func smallImage(seed uint64, i int) (cfg []byte, layers [][]byte) {
	cfg = []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"},"regbench":` + strconv.FormatUint(seed, 10) + `,"image":` + strconv.Itoa(i) + `}`)
	for l := 0; l < 2; l++ {
		b, _ := io.ReadAll(newPRNG(seed<<32^uint64(i)<<2^uint64(l)+1, 4096))
		layers = append(layers, b)
	}
	return cfg, layers
}

// pushSmallImage pushes a config, two layers and a manifest tagged tag.
func pushSmallImage(base, repo, tag string, seed uint64, i int) error {
	cfg, layers := smallImage(seed, i)
	cd, err := pushSmallBlob(base, repo, cfg)
	if err != nil {
		return err
	}
	var ds []digest.Digest
	var sizes []int
	for _, l := range layers {
		d, err := pushSmallBlob(base, repo, l)
		if err != nil {
			return err
		}
		ds = append(ds, d)
		sizes = append(sizes, len(l))
	}
	return putManifest(base, repo, tag, manifestJSON(cd, len(cfg), ds, sizes))
}
