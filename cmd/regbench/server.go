package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/registryd/registryd/internal/localsrv"
)

// target is one registry implementation under test.
type target struct {
	Name string // column header
	Bin  string // run as BIN serve CONFIG, BIN garbage-collect CONFIG
	Kind kind
}

// server is a running registry process over a storage root.
type server struct {
	t       target
	Addr    string
	Root    string
	Config  string
	Debug   string // registryd's debug listener (pprof), when set
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

func (s *server) URL(p string) string { return "http://" + s.Addr + p }

// writeConfig writes the config every server gets: filesystem storage,
// deletes enabled, log level error, catalog pages up to 100,000 entries.
func writeConfig(path, root, addr, debugAddr string) error {
	return os.WriteFile(path, []byte(configYAML(filesystemStorage(root), addr, debugAddr)), 0o644)
}

// filesystemStorage is the storage driver section for a filesystem root.
func filesystemStorage(root string) string {
	return fmt.Sprintf("  filesystem:\n    rootdirectory: %s\n", root)
}

// configYAML is a server's whole config around a storage driver section
// (indented under storage:, see filesystemStorage and s3Storage).
func configYAML(driver, addr, debugAddr string) string {
	debug := ""
	if debugAddr != "" {
		debug = fmt.Sprintf("  debug:\n    addr: %s\n", debugAddr)
	}
	return fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
%s  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
%scatalog:
  maxentries: 100000
`, driver, addr, debug)
}

// startServer starts t over root (created if missing) on a free loopback port.
func startServer(t target, root, work string, debug bool) (*server, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	return startServerWith(t, root, work, debug, filesystemStorage(root))
}

// startServerWith starts t with the given storage driver section; root is
// only recorded (removed by bench.stop when set).
func startServerWith(t target, root, work string, debug bool, driver string) (*server, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := localsrv.FreeAddr()
		if err != nil {
			return nil, err
		}
		s := &server{t: t, Addr: addr, Root: root,
			logPath: filepath.Join(work, t.Name+".log")}
		if debug {
			if s.Debug, err = localsrv.FreeAddr(); err != nil {
				return nil, err
			}
		}
		if s.Config, err = writeServerConfig(t, work, root, addr, s.Debug, driver); err != nil {
			return nil, err
		}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

func (s *server) start() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.t.Bin, "serve", s.Config)
	cmd.Env = cleanEnv()
	cmd.Dir = filepath.Dir(s.Config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(s.exited) }()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited at startup:\n%s", s.t.Name, localsrv.Tail(s.logPath, 20))
		default:
		}
		resp, err := c.Get(s.URL("/v2/"))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("%s not ready in 20s:\n%s", s.t.Name, localsrv.Tail(s.logPath, 20))
}

// Stop ends the process (SIGTERM, then SIGKILL after 10 s).
func (s *server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// CPU is the processor time the process has used so far (user and
// system), in seconds: steadier than wall time on a busy machine, since
// it counts the work done rather than the turns waited for.
func (s *server) CPU() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return math.NaN()
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime and stime fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return math.NaN()
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// HWM is the process's peak resident set (VmHWM) in bytes.
func (s *server) HWM() int64 {
	return procStatusKB(s.cmd.Process.Pid, "VmHWM:") * 1024
}

// ResetHWM clears the peak resident set (writing 5 to clear_refs), so the
// next HWM covers only what follows. Reports whether that worked.
func (s *server) ResetHWM() bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.cmd.Process.Pid), []byte("5"), 0) == nil
}

func procStatusKB(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), key) {
			fields := strings.Fields(sc.Text()[len(key):])
			if len(fields) > 0 {
				v, _ := strconv.ParseInt(fields[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// cleanEnv is the servers' environment: regbench's, without REGISTRY_*
// (config overrides) and AWS_* (credentials, and AWS_CA_BUNDLE, which makes
// distribution 2.8's s3 driver panic at startup with its own transport).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}
