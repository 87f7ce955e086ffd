package e2e

import (
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// conformanceSettings turns on every API and data test of the OCI
// distribution-spec conformance suite (tools/go.mod pins it) that a
// conforming registry must pass. OCI_VERSION decides the rest: "dev" adds
// upload cancel, required Docker-Content-Digest headers and tags in the
// manifest PUT query (?tag=). Left out: OCI_DATA_SPARSE (manifests whose blobs
// were never pushed, which a registry may reject) and the read-only settings.
// An OCI_* variable in the environment overrides these (e.g.
// OCI_DATA_SPARSE=true make conformance).
var conformanceSettings = []string{
	"OCI_TLS=disabled",
	"OCI_REPO1=conformance/repo1",
	"OCI_REPO2=conformance/repo2",
	"OCI_LOG=warn",
	"OCI_API_PING=true",
	"OCI_API_PULL=true",
	"OCI_API_PUSH=true",
	"OCI_API_BLOBS_ATOMIC=true",
	"OCI_API_BLOBS_DELETE=true",
	"OCI_API_BLOBS_MOUNT_ANONYMOUS=true",
	"OCI_API_MANIFESTS_ATOMIC=true",
	"OCI_API_MANIFESTS_DELETE=true",
	"OCI_API_TAGS_ATOMIC=true",
	"OCI_API_TAGS_DELETE=true",
	"OCI_API_TAGS_LIST=true",
	"OCI_API_REFERRER=true",
	"OCI_DATA_IMAGE=true",
	"OCI_DATA_INDEX=true",
	"OCI_DATA_INDEX_LIST=true",
	"OCI_DATA_ARTIFACT=true",
	"OCI_DATA_SUBJECT=true",
	"OCI_DATA_SUBJECT_MISSING=true",
	"OCI_DATA_ARTIFACT_LIST=true",
	"OCI_DATA_SUBJECT_LIST=true",
	"OCI_DATA_DATA_FIELD=true",
	"OCI_DATA_NONDISTRIBUTABLE=true",
	"OCI_DATA_CUSTOM_FIELDS=true",
	"OCI_DATA_NO_LAYERS=true",
	"OCI_DATA_EMPTY_BLOB=true",
	"OCI_DATA_SHA512=true",
}

// TestConformance runs the OCI distribution-spec conformance suite against a
// fresh registryd, once for spec 1.1 and once for the development version.
// Any failed check fails the test, naming the check and its error. Checks the
// suite skips because the registry answered as if a feature were unsupported
// (e.g. a full 200 answer to an unsatisfiable Range) are listed in the log;
// REGISTRYD_E2E_CONFORMANCE_STRICT=1 fails on those too.
func TestConformance(t *testing.T) {
	bin := tool(t, "conformance")
	for _, version := range []string{"1.1", "dev"} {
		t.Run("OCI_VERSION="+version, func(t *testing.T) {
			srv := startRegistryd(t)
			results := t.TempDir()
			if d := os.Getenv("REGISTRYD_E2E_RESULTS_DIR"); d != "" {
				results = filepath.Join(fromRoot(d), "oci-"+version)
				must(t, os.RemoveAll(results))
				must(t, os.MkdirAll(results, 0o755))
			}
			runConformance(t, bin, srv.Addr, version, results)
		})
	}
}

// runConformance runs the suite against the registry at addr; extraEnv
// (OCI_TLS, OCI_USERNAME, SSL_CERT_FILE, ...) overrides the settings above.
func runConformance(t *testing.T, bin string, addr, version, results string, extraEnv ...string) {
	env := []string{}
	for _, kv := range os.Environ() {
		// Drop the caller's OCI_* here; they are appended again last so
		// that they override the settings above.
		if !strings.HasPrefix(kv, "OCI_") {
			env = append(env, kv)
		}
	}
	env = append(env, conformanceSettings...)
	env = append(env,
		"OCI_REGISTRY="+addr,
		"OCI_VERSION="+version,
		"OCI_RESULTS_DIR="+results,
	)
	env = append(env, extraEnv...)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OCI_") {
			env = append(env, kv)
			t.Logf("from the environment: %s", kv)
		}
	}

	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Dir = results // no oci-conformance.yaml there: only the environment configures it
	out, err := os.Create(filepath.Join(results, "output.txt"))
	must(t, err)
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start conformance: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(15 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("conformance suite did not finish within 15 minutes; output:\n%s", tail(out.Name(), 60))
	}
	elapsed := time.Since(start).Round(time.Millisecond)

	// The suite exits 1 when a check failed; the junit report says which.
	rep, err := readJunit(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatalf("conformance suite (exit: %v) wrote no usable junit.xml: %v\noutput:\n%s", runErr, err, tail(out.Name(), 80))
	}
	var passed, failed, unsupported, disabled []junitCase
	for _, c := range rep.cases() {
		switch {
		case c.Status == "passed":
			passed = append(passed, c)
		case c.Status == "skipped" && strings.Contains(c.detail(), "disabled in the configuration"):
			disabled = append(disabled, c) // not part of this OCI_VERSION
		case c.Status == "skipped":
			unsupported = append(unsupported, c) // the registry answered "unsupported"
		default: // failure, error
			failed = append(failed, c)
		}
	}
	t.Logf("conformance OCI_VERSION=%s against %s (%s): %d passed, %d failed, %d skipped (%d unsupported by the registry, %d not in this version), in %s; results in %s",
		version, "registryd", addr, len(passed), len(failed), len(unsupported)+len(disabled), len(unsupported), len(disabled), elapsed, results)
	if len(unsupported) > 0 {
		var b strings.Builder
		for _, c := range unsupported {
			fmt.Fprintf(&b, "  %s: %s\n", c.short(), firstLine(c.detail()))
		}
		t.Logf("checks skipped because the registry answered as if unsupported:\n%s", b.String())
	}
	if len(failed) > 0 {
		var b strings.Builder
		for _, c := range failed {
			fmt.Fprintf(&b, "  %s [%s]\n      %s\n", c.short(), c.Status,
				strings.ReplaceAll(truncate(strings.TrimSpace(c.detail()), 1500), "\n", "\n      "))
		}
		t.Errorf("%d conformance checks failed (OCI_VERSION=%s):\n%s", len(failed), version, b.String())
	} else if runErr != nil {
		t.Errorf("conformance suite exited with %v although junit.xml lists no failure; output:\n%s", runErr, tail(out.Name(), 80))
	}
	if len(unsupported) > 0 && os.Getenv("REGISTRYD_E2E_CONFORMANCE_STRICT") == "1" {
		t.Errorf("%d conformance checks skipped as unsupported (REGISTRYD_E2E_CONFORMANCE_STRICT=1)", len(unsupported))
	}
	if len(passed) == 0 {
		t.Errorf("no conformance check passed; output:\n%s", tail(out.Name(), 80))
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return truncate(s, 300)
}

// junit.xml as the conformance suite writes it.
type junitReport struct {
	Suites []struct {
		Name  string      `xml:"name,attr"`
		Cases []junitCase `xml:"testcase"`
	} `xml:"testsuite"`
}

type junitCase struct {
	Name      string `xml:"name,attr"`
	Status    string `xml:"status,attr"` // passed, skipped, failure, error
	SystemOut string `xml:"system-out"`  // the errors
	SystemErr string `xml:"system-err"`  // the requests and responses
}

// detail is the error text of a case: its errors, the reason it was
// skipped, or the tail of its output.
func (c junitCase) detail() string {
	if strings.TrimSpace(c.SystemOut) != "" {
		return c.SystemOut
	}
	if _, after, ok := strings.Cut(c.SystemErr, "skipping test:\n"); ok {
		return strings.TrimSpace(after)
	}
	lines := strings.Split(strings.TrimSpace(c.SystemErr), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// short is the case's name without the suite's own prefix.
func (c junitCase) short() string {
	return strings.TrimPrefix(c.Name, "OCI Conformance Test/")
}

func (r junitReport) cases() []junitCase {
	var cs []junitCase
	for _, s := range r.Suites {
		cs = append(cs, s.Cases...)
	}
	return cs
}

func readJunit(path string) (junitReport, error) {
	var r junitReport
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := xml.Unmarshal(b, &r); err != nil {
		return r, err
	}
	if len(r.cases()) == 0 {
		return r, fmt.Errorf("%s lists no test case", path)
	}
	return r, nil
}
