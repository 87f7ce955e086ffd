package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// runFunc runs a command once its flags are parsed; args are the
// positional arguments.
type runFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// command is one entry of the command table, the single source of the
// dispatch and of every help text.
type command struct {
	name    string   // as typed: "serve", "config check"
	aliases []string // other names: "gc"
	args    string   // positional arguments, for the usage line
	summary string   // one line, in the command list
	about   string   // what `registryd <command> --help` explains
	client  bool     // a registry client command (client/cli): listed apart
	// flags defines the command's flags on fs and returns what runs it.
	flags func(fs *flag.FlagSet) runFunc
}

// commands returns the command table, in the order help lists it.
func commands() []*command {
	server := []*command{
		{
			name:    "serve",
			args:    "[config.yml]",
			summary: "run the registry (no file: embedded default, :5000 with storage under ./data)",
			about: `Runs the registry. Without a file it uses the embedded default
(:5000, filesystem storage under ./data). REGISTRY_* variables override keys.
SIGINT or SIGTERM stop it after in-flight requests finish (http.draintimeout);
with TLS, SIGHUP reloads the certificate and key.`,
			flags: func(fs *flag.FlagSet) runFunc { return cmdServe },
		},
		{
			name:    "garbage-collect",
			aliases: []string{"gc"},
			args:    "[flags] [config.yml]",
			summary: "remove blobs no manifest references, and old uploads",
			about:   gcAbout,
			flags:   gcFlags,
		},
		{
			name:    "scrub",
			args:    "[flags] [config.yml]",
			summary: "check the integrity of every blob, link, tag and image; --repair quarantines what is damaged",
			about:   scrubAbout,
			flags:   scrubFlags, // scrub.go
		},
		{
			name:    "retention",
			args:    "[flags] [config.yml]",
			summary: "apply the retention policies once and print the per-tag report",
			about:   retentionAbout,
			flags:   retentionFlags,
		},
		{
			name:    "reindex",
			args:    "[config.yml]",
			summary: "rebuild the S3 catalog's index of repository names from the bucket (safe while serving)",
			about:   reindexAbout,
			flags:   reindexFlags, // reindex.go
		},
		{
			name:    "config check",
			args:    "[config.yml]",
			summary: "validate a config and print the effective settings (environment applied, secrets masked)",
			about: `Validates the configuration (REGISTRY_* variables applied) and prints
the effective settings with secrets masked. Exits 1 if it is invalid.`,
			flags: func(fs *flag.FlagSet) runFunc { return cmdConfigCheck },
		},
	}
	rest := []*command{
		completionCommand(),
		{
			name:    "version",
			summary: "print the version",
			about:   "Prints registryd's version. Also: registryd --version, registryd -v.",
			flags: func(fs *flag.FlagSet) runFunc {
				return func(_ context.Context, args []string, stdout, stderr io.Writer) int {
					if len(args) > 0 {
						fmt.Fprintf(stderr, "registryd version: unexpected argument %q\n", args[0])
						return 2
					}
					fmt.Fprintf(stdout, "registryd %s\n", version)
					return 0
				}
			},
		},
		{
			name:    "help",
			args:    "[command]",
			summary: "print this help, or a command's",
			about:   "Prints the list of commands, or the help of one (registryd help garbage-collect).",
			flags: func(fs *flag.FlagSet) runFunc {
				return func(_ context.Context, args []string, stdout, stderr io.Writer) int {
					if len(args) == 0 {
						printUsage(stdout)
						return 0
					}
					c, rest := findCommand(args)
					if c == nil || len(rest) > 0 {
						fmt.Fprintf(stderr, "registryd help: unknown command %q\n\n", strings.Join(args, " "))
						printUsage(stderr)
						return 2
					}
					if args[0] == "gc" && len(args) == 1 {
						return dispatch(context.Background(), []string{"gc", "--help"}, stdout, stderr)
					}
					c.printHelp(stdout)
					return 0
				}
			},
		},
	}
	all := append(server, clientCommands()...)
	return append(all, rest...)
}

// remoteGCCommand is the client's `gc HOST`, which shares its name with
// garbage-collect's alias (see remoteGC).
func remoteGCCommand() *command {
	for _, c := range commands() {
		if c.client && c.name == "gc" {
			return c
		}
	}
	panic("no client gc command")
}

// findCommand finds the command args start with; rest are the arguments
// after its name.
func findCommand(args []string) (c *command, rest []string) {
	for _, c := range commands() {
		for _, name := range append([]string{c.name}, c.aliases...) {
			words := strings.Fields(name)
			if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
				return c, args[len(words):]
			}
		}
	}
	return nil, nil
}

const usageHeader = `registryd: an OCI Distribution 1.1 / Docker Registry HTTP API V2 server,
and a client for any such registry

Usage: registryd <command> [flags] [arguments]

Commands:
`

const clientHeader = `
Registry client commands (against any V2 registry; registryd's admin API
where the server has it). Each takes --insecure, --ca FILE and, where it
prints, --format json|TEMPLATE; 'registryd <command> --help' shows its flags
and examples:
`

const usageFooter = `
Every configuration key can be overridden by REGISTRY_<KEY_PATH>, e.g.
REGISTRY_STORAGE_DELETE_ENABLED=true or REGISTRY_HTTP_ADDR=:5001.

Every command also takes --help (-h): its usage, flags and details, on
stdout. An unknown command or flag prints the usage on stderr and exits 2.
`

// printUsage writes the list of commands with their flags.
func printUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString(usageHeader)
	var clients []*command
	for _, c := range commands() {
		if c.client {
			clients = append(clients, c)
			continue
		}
		line := "  " + c.name
		if c.args != "" {
			line += " " + c.args
		}
		if len(c.aliases) > 0 {
			line += "   (alias: " + strings.Join(c.aliases, ", ") + ")"
		}
		fmt.Fprintf(&b, "%s\n      %s\n", line, c.summary)
		writeFlags(&b, c.flagSet(), "      ", false)
	}
	b.WriteString(clientHeader)
	for _, c := range clients {
		fmt.Fprintf(&b, "  %s %s\n      %s\n", c.name, c.args, c.summary)
	}
	b.WriteString(usageFooter)
	fmt.Fprint(w, b.String())
}

// flagSet returns a FlagSet with the command's flags, and what runs it.
func (c *command) flagSet() *flag.FlagSet {
	fs, _ := c.newFlagSet()
	return fs
}

func (c *command) newFlagSet() (*flag.FlagSet, runFunc) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	run := c.flags(fs)
	return fs, run
}

// printHelp writes `registryd <command> --help`.
func (c *command) printHelp(w io.Writer) {
	var b strings.Builder
	c.usageLines(&b)
	fmt.Fprintf(&b, "\n%s\n", c.about)
	b.WriteString("\nFlags:\n")
	writeFlags(&b, c.flagSet(), "  ", true)
	fmt.Fprint(w, b.String())
}

// printShortUsage writes the usage lines and flags, after a bad flag.
func (c *command) printShortUsage(w io.Writer) {
	var b strings.Builder
	c.usageLines(&b)
	b.WriteString("\nFlags:\n")
	writeFlags(&b, c.flagSet(), "  ", true)
	fmt.Fprintf(&b, "\nRun 'registryd %s --help' for details.\n", c.name)
	fmt.Fprint(w, b.String())
}

func (c *command) usageLines(b *strings.Builder) {
	fmt.Fprintf(b, "Usage: registryd %s", c.name)
	if c.args != "" {
		fmt.Fprintf(b, " %s", c.args)
	}
	b.WriteString("\n")
	for _, a := range c.aliases {
		fmt.Fprintf(b, "       registryd %s (alias)\n", a)
	}
}

// shortPrefix marks a flag defined as the short form of another: its usage
// is "short for --long".
const shortPrefix = "short for --"

// writeFlags lists fs's flags, one a line: "--name, -n  usage"; with
// help, --help too.
func writeFlags(b *strings.Builder, fs *flag.FlagSet, indent string, help bool) {
	shorts := map[string][]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if long, ok := strings.CutPrefix(f.Usage, shortPrefix); ok {
			shorts[long] = append(shorts[long], "-"+f.Name)
		}
	})
	type row struct{ names, usage string }
	var rows []row
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, shortPrefix) {
			return
		}
		arg, usage := flag.UnquoteUsage(f)
		names := "--" + f.Name
		if arg != "" {
			names += " " + arg
		}
		for _, s := range shorts[f.Name] {
			names += ", " + s
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		rows = append(rows, row{names, usage})
		width = max(width, len(names))
	})
	if help {
		rows = append(rows, row{"--help, -h", "print this help"})
		width = max(width, len("--help, -h"))
	}
	for _, r := range rows {
		fmt.Fprintf(b, "%s%-*s  %s\n", indent, width, r.names, r.usage)
	}
}

// isHelp tells whether a is a request for help.
func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// execute parses a command's flags, which may come before or after its
// arguments (as with the reference's "garbage-collect config.yml
// --dry-run"), and runs it. --help prints the help to stdout and exits 0;
// a bad flag prints the error and the usage to stderr and exits 2.
func (c *command) execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "--" {
			break
		}
		if isHelp(a) {
			c.printHelp(stdout)
			return 0
		}
	}
	fs, run := c.newFlagSet()
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) { // -help=..., say
				c.printHelp(stdout)
				return 0
			}
			fmt.Fprintf(stderr, "registryd %s: %v\n\n", c.name, err)
			c.printShortUsage(stderr)
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	return run(ctx, positional, stdout, stderr)
}

// dispatch runs the command args name: the CLI without the process.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	switch {
	case isHelp(args[0]):
		printUsage(stdout)
		return 0
	case args[0] == "--version" || args[0] == "-v":
		fmt.Fprintf(stdout, "registryd %s\n", version)
		return 0
	case strings.HasPrefix(args[0], "-"):
		fmt.Fprintf(stderr, "registryd: unknown flag %q\n\n", args[0])
		printUsage(stderr)
		return 2
	}
	if args[0] == "__complete" { // the completion scripts' helper
		return completeReference(ctx, args[1:], stdout)
	}
	if args[0] == "gc" {
		if remoteGC(args[1:]) {
			return remoteGCCommand().execute(ctx, args[1:], stdout, stderr)
		}
		if slices.ContainsFunc(args[1:], isHelp) && !slices.Contains(args[1:], "--") {
			// Both meanings of gc: the offline collection's help, then the
			// remote one's.
			mustCommand("garbage-collect").printHelp(stdout)
			fmt.Fprintln(stdout)
			remoteGCCommand().printHelp(stdout)
			return 0
		}
	}
	c, rest := findCommand(args)
	if c == nil {
		// "config" alone, or with an unknown subcommand: say what exists.
		var group []string
		for _, c := range commands() {
			if first, _, ok := strings.Cut(c.name, " "); ok && first == args[0] {
				group = append(group, c.name)
			}
		}
		if len(group) > 0 {
			if len(args) > 1 && isHelp(args[1]) {
				printUsage(stdout)
				return 0
			}
			fmt.Fprintf(stderr, "registryd %s: expected a subcommand: %s\n\n", args[0], strings.Join(group, ", "))
		} else {
			fmt.Fprintf(stderr, "registryd: unknown command %q\n\n", args[0])
		}
		printUsage(stderr)
		return 2
	}
	return c.execute(ctx, rest, stdout, stderr)
}

// mustCommand returns the command named name.
func mustCommand(name string) *command {
	c, rest := findCommand(strings.Fields(name))
	if c == nil || len(rest) > 0 {
		panic("no command " + name)
	}
	return c
}
