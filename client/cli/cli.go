// Package cli is registryd's client commands (`registryd repo ls`, `tag rm`,
// `du`, `prune`, ...): their flags, help, output and prompts, over the
// client package. cmd/registryd puts them in its command table next to the
// server's commands; this package knows nothing of that table.
//
// Conventions every command keeps:
//   - references are HOST[:PORT]/REPO[:TAG|@DIGEST]; plain HTTP only to
//     loopback hosts unless --insecure;
//   - output: a table (or text) by default, --format json (one object per
//     line for lists) or a Go template, with docker's "table " prefix;
//   - exit status: 0 ok, 1 error, 2 usage, 3 not found;
//   - progress bars only when stderr is a terminal; prompts on stderr,
//     answered on stdin; a destructive command asks unless --yes, and
//     refuses when stdin is not a terminal and --yes is missing;
//   - --dry-run prints exactly the plan a real run carries out.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/registryd/registryd/client"
)

// Exit statuses.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitNotFound = 3
)

// Command is one client command.
type Command struct {
	Name    string // as typed: "repo ls"
	Args    string // positional arguments, for the usage line
	Summary string // one line, in the command list
	About   string // the --help text, with examples
	// Flags defines the command's flags on fs and returns what runs it.
	Flags func(fs *flag.FlagSet) Run
}

// Run runs a command once its flags are parsed; args are the positional
// arguments.
type Run func(ctx context.Context, s *Streams, args []string) int

// Streams are a command's standard streams, and whether they are
// terminals (which decides prompts and progress bars).
type Streams struct {
	In          io.Reader
	Out, Err    io.Writer
	InTerminal  bool
	ErrTerminal bool
	// ReadPassword reads a line from In without echo; nil when In is
	// not a terminal.
	ReadPassword func(ctx context.Context) (string, error)
	// Width is the terminal's width for progress bars (0: 80).
	Width int
}

// NewStreams wraps the process's streams, telling terminals apart.
func NewStreams(in io.Reader, out, errw io.Writer) *Streams {
	s := &Streams{In: in, Out: out, Err: errw}
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		s.InTerminal = true
		fd := int(f.Fd())
		s.ReadPassword = func(ctx context.Context) (string, error) {
			state, err := term.GetState(fd)
			if err != nil {
				return "", err
			}
			// Interrupted, the read is abandoned: echo must come back.
			return readCancelable(ctx, func() (string, error) {
				b, err := term.ReadPassword(fd)
				return string(b), err
			}, func() { term.Restore(fd, state) })
		}
	}
	if f, ok := errw.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		s.ErrTerminal = true
		if w, _, err := term.GetSize(int(f.Fd())); err == nil {
			s.Width = w
		}
	}
	return s
}

// usageError is a mistake on the command line (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// errDeclined is a confirmation answered no, or not asked for lack of a
// terminal.
var errDeclined = errors.New("nothing was changed")

// fail prints err for command name and returns its exit status.
func fail(s *Streams, name string, err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(s.Err, "registryd %s: %v\nRun 'registryd %s --help' for usage and examples.\n", name, err, name)
		return ExitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(s.Err, "registryd %s: interrupted\n", name)
		return ExitError
	case client.IsNotFound(err):
		fmt.Fprintf(s.Err, "registryd %s: not found: %v\n", name, err)
		return ExitNotFound
	}
	fmt.Fprintf(s.Err, "registryd %s: %v\n", name, err)
	return ExitError
}

// common are the flags every client command has.
type common struct {
	insecure bool
	ca       string
}

func (c *common) define(fs *flag.FlagSet) {
	fs.BoolVar(&c.insecure, "insecure", false, "allow plain HTTP and unverified TLS to any host (loopback hosts use HTTP without it)")
	fs.StringVar(&c.ca, "ca", "", "trust the certificate authorities in this PEM `file` too")
}

// client makes the registry client the flags describe.
func (c *common) client() (*client.Client, error) {
	return client.New(c.options())
}

func (c *common) options() client.Options {
	return client.Options{Insecure: c.insecure, CAFile: c.ca, UserAgent: "registryd-cli/" + Version}
}

// Version is the registryd version, set by cmd/registryd.
var Version = "dev"

// The text every command's help ends with.
const commonHelp = `
References are HOST[:PORT]/REPO[:TAG|@DIGEST]. Loopback hosts (localhost,
127.0.0.0/8, ::1) are spoken to over plain HTTP, as docker does; others over
TLS unless --insecure. Credentials come from docker's config.json
($DOCKER_CONFIG, its credsStore and credHelpers), else podman's auth.json
($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json); registryd login
writes docker's. Exit status: 0 ok, 1 error, 2 usage, 3 not found.`

// parseRef parses a reference argument; what says which parts it needs.
func parseRef(arg string, need refNeed) (client.Reference, error) {
	r, err := client.ParseReference(arg)
	if err != nil {
		return r, &usageError{err.Error()}
	}
	switch need {
	case needRegistry:
		if r.Repository != "" {
			return r, usagef("%s: expected a registry, HOST[:PORT], without a repository", arg)
		}
	case needHost:
		if r.Repository != "" && (r.Tag != "" || r.Digest != "") {
			return r, usagef("%s: expected HOST[:PORT] or HOST/REPO, without a tag or digest", arg)
		}
	case needRepo:
		if r.Repository == "" {
			return r, usagef("%s: expected HOST[:PORT]/REPO", arg)
		}
		if r.Tag != "" || r.Digest != "" {
			return r, usagef("%s: expected a repository (HOST/REPO), without a tag or digest", arg)
		}
	case needImage:
		if r.Repository == "" {
			return r, usagef("%s: expected HOST[:PORT]/REPO[:TAG|@DIGEST]", arg)
		}
	case needTag:
		if r.Repository == "" || r.Tag == "" || r.Digest != "" {
			return r, usagef("%s: expected HOST[:PORT]/REPO:TAG (a tag, no digest)", arg)
		}
	case needDigest:
		if r.Repository == "" || r.Digest == "" {
			return r, usagef("%s: expected HOST[:PORT]/REPO@DIGEST; to remove one tag, use registryd tag rm", arg)
		}
	}
	return r, nil
}

type refNeed int

const (
	needRegistry refNeed = iota // HOST
	needHost                    // HOST or HOST/REPO
	needRepo                    // HOST/REPO
	needImage                   // HOST/REPO[:TAG|@DIGEST]
	needTag                     // HOST/REPO:TAG
	needDigest                  // HOST/REPO@DIGEST
)

// oneArg checks that exactly one positional argument was given.
func oneArg(args []string, what string) (string, error) {
	switch len(args) {
	case 0:
		return "", usagef("missing %s", what)
	case 1:
		return args[0], nil
	}
	return "", usagef("expected one %s, got %d arguments: %s", what, len(args), strings.Join(args, " "))
}

// start is how most commands begin: their one reference argument, checked
// for what they need, their --format (format nil: they have none) and the
// registry client.
func (c *common) start(args []string, what string, need refNeed, format *formatFlag) (client.Reference, *output, *client.Client, error) {
	var ref client.Reference
	arg, err := oneArg(args, what)
	if err != nil {
		return ref, nil, nil, err
	}
	if ref, err = parseRef(arg, need); err != nil {
		return ref, nil, nil, err
	}
	out := &output{}
	if format != nil {
		if out, err = format.parse(); err != nil {
			return ref, nil, nil, err
		}
	}
	cl, err := c.client()
	if err != nil {
		return ref, nil, nil, err
	}
	return ref, out, cl, nil
}
