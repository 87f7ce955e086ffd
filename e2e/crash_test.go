package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pushBlobHTTP pushes content monolithically and fails the test unless 201.
func pushBlobHTTP(t *testing.T, s *Server, repo string, content []byte) string {
	t.Helper()
	d := sha256Digest(content)
	r := doHTTP(t, http.MethodPost, s.URL("/v2/"+repo+"/blobs/uploads/?digest="+d), nil, content)
	if r.Status != http.StatusCreated {
		t.Fatalf("push blob: %s", r)
	}
	return d
}

func imageManifest(cfg string, cfgSize int, layer string, layerSize int) []byte {
	return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`, cfg, cfgSize, layer, layerSize))
}

// A crash in the middle of an upload loses nothing committed, shows
// nothing partial, and the upload resumes where the storage says it is.
func TestCrashDuringUpload(t *testing.T) {
	s := startRegistryd(t)
	cfg, layer := []byte(`{"os":"linux"}`), bytes.Repeat([]byte("committed layer "), 4096)
	cd, ld := pushBlobHTTP(t, s, "crash/a", cfg), pushBlobHTTP(t, s, "crash/a", layer)
	m := imageManifest(cd, len(cfg), ld, len(layer))
	if r := doHTTP(t, http.MethodPut, s.URL("/v2/crash/a/manifests/v1"), http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}, m); r.Status != 201 {
		t.Fatalf("manifest: %s", r)
	}

	// a 64 MiB upload, streamed; the server is killed after about half
	big := make([]byte, 64<<20)
	rand.New(rand.NewSource(7)).Read(big)
	bigDigest := sha256Digest(big)
	r := doHTTP(t, http.MethodPost, s.URL("/v2/crash/a/blobs/uploads/"), nil, nil)
	loc := r.Header.Get("Location")
	if r.Status != 202 || loc == "" {
		t.Fatalf("start upload: %s", r)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPatch, loc, pr)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	half := len(big) / 2
	if _, err := pw.Write(big[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the server write what it read
	s.Kill()
	pw.CloseWithError(io.ErrUnexpectedEOF)
	<-done
	s.Restart()

	// committed content is intact
	if got := getManifest(t, s, "crash/a", "v1"); got.Status != 200 || !bytes.Equal(got.Body, m) {
		t.Fatalf("manifest after crash: %s", got)
	}
	if got := getBlob(t, s, "crash/a", ld); got.Status != 200 || !bytes.Equal(got.Body, layer) {
		t.Fatalf("layer after crash: %d", got.Status)
	}
	// the interrupted blob is not served
	if got := doHTTP(t, http.MethodHead, s.URL("/v2/crash/a/blobs/"+bigDigest), nil, nil); got.Status != 404 {
		t.Fatalf("partial blob visible: %d", got.Status)
	}
	// the session survives the restart and resumes from what was stored
	st := doHTTP(t, http.MethodGet, loc, nil, nil)
	if st.Status != 204 {
		t.Fatalf("upload status after restart: %s", st)
	}
	end, err := strconv.ParseInt(strings.TrimPrefix(st.Header.Get("Range"), "0-"), 10, 64)
	if err != nil {
		t.Fatalf("Range %q", st.Header.Get("Range"))
	}
	offset := end + 1
	if st.Header.Get("Range") == "0-0" {
		offset = 0
	}
	if offset > int64(len(big)) {
		t.Fatalf("stored more than was sent: %d", offset)
	}
	t.Logf("server had stored %d of %d bytes when killed", offset, half)
	rest := doHTTP(t, http.MethodPatch, st.Header.Get("Location"), http.Header{"Content-Range": {fmt.Sprintf("%d-%d", offset, len(big)-1)}}, big[offset:])
	if rest.Status != 202 {
		t.Fatalf("resume: %s", rest)
	}
	fin := doHTTP(t, http.MethodPut, rest.Header.Get("Location")+"?digest="+bigDigest, nil, nil)
	if fin.Status != 201 {
		t.Fatalf("finish: %s", fin)
	}
	if got := getBlob(t, s, "crash/a", bigDigest); got.Status != 200 || sha256Digest(got.Body) != bigDigest {
		t.Fatalf("resumed blob: %d", got.Status)
	}
}

// Kill the server while clients push manifests and move tags; after the
// restart every push that was acknowledged pulls byte-identical and every
// tag resolves to a complete manifest.
func TestCrashDuringManifestPuts(t *testing.T) {
	s := startRegistryd(t)
	cfg := []byte(`{"os":"linux"}`)
	cd := pushBlobHTTP(t, s, "crash/m", cfg)
	layers := make([]string, 8)
	for i := range layers {
		layers[i] = pushBlobHTTP(t, s, "crash/m", []byte(fmt.Sprintf("layer %d", i)))
	}
	for round := 0; round < 3; round++ {
		var mu sync.Mutex
		acked := map[string][]byte{} // tag -> manifest acknowledged with 201
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := 0; c < 4; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					li := (c + i) % len(layers)
					m := imageManifest(cd, len(cfg), layers[li], len(fmt.Sprintf("layer %d", li)))
					m = append(m[:len(m)-1], []byte(fmt.Sprintf(`,"annotations":{"n":"%d-%d-%d"}}`, round, c, i))...)
					tag := fmt.Sprintf("c%d-%d", c, i%5)
					req, _ := http.NewRequest(http.MethodPut, s.URL("/v2/crash/m/manifests/"+tag), bytes.NewReader(m))
					req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return
					}
					resp.Body.Close()
					if resp.StatusCode == 201 {
						mu.Lock()
						acked[tag] = m
						mu.Unlock()
					}
				}
			}(c)
		}
		// Kill at a random instant after the first acknowledgement (not
		// after a fixed time: on a loaded machine the first answers after
		// a restart can take longer than any fixed wait).
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n > 0 || time.Now().After(deadline) {
				break
			}
		}
		time.Sleep(time.Duration(rand.Intn(200)) * time.Millisecond)
		s.Kill()
		close(stop)
		wg.Wait()
		s.Restart()
		// The last acknowledged value of a tag is what it holds, unless a
		// later push reached the storage without its answer reaching the
		// client; so each tag must hold a complete manifest of this test
		// and every acknowledged manifest must pull by digest.
		for tag, m := range acked {
			d := sha256Digest(m)
			if got := getManifest(t, s, "crash/m", d); got.Status != 200 || !bytes.Equal(got.Body, m) {
				t.Fatalf("round %d: acknowledged manifest %s lost: %s", round, d, got)
			}
			got := getManifest(t, s, "crash/m", tag)
			if got.Status != 200 || got.Header.Get("Docker-Content-Digest") != sha256Digest(got.Body) || !bytes.Contains(got.Body, []byte(`"annotations"`)) {
				t.Fatalf("round %d: tag %s broken after crash: %s", round, tag, got)
			}
		}
		if len(acked) == 0 {
			t.Fatalf("round %d: no push was acknowledged before the kill", round)
		}
	}
}

func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// A 1 GiB blob goes in and out in constant memory: the server's peak
// resident size stays under 100 MiB.
func TestBigBlobConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes and pulls 1 GiB")
	}
	s := startRegistryd(t)
	const size = 1 << 30
	gen := func() io.Reader { return io.LimitReader(rand.New(rand.NewSource(42)), size) }
	h := sha256.New()
	io.Copy(h, gen())
	d := "sha256:" + hex.EncodeToString(h.Sum(nil))

	req, _ := http.NewRequest(http.MethodPost, s.URL("/v2/big/blob/blobs/uploads/?digest="+d), gen())
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("push: %d", resp.StatusCode)
	}
	resp, err = http.Get(s.URL("/v2/big/blob/blobs/" + d))
	if err != nil {
		t.Fatal(err)
	}
	h.Reset()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || "sha256:"+hex.EncodeToString(h.Sum(nil)) != d {
		t.Fatalf("pull: %d bytes, %v", n, err)
	}
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	hwm := vmHWM(t, pid)
	t.Logf("registryd peak RSS over a 1 GiB push and pull: %.1f MiB", float64(hwm)/(1<<20))
	if hwm > 100<<20 {
		t.Fatalf("peak RSS %d MiB, want under 100 MiB", hwm>>20)
	}
}
