package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestCLIHelpAndErrors(t *testing.T) {
	type stream int
	const (
		out  stream = iota // help on stdout, nothing on stderr
		errs               // usage on stderr, nothing on stdout
	)
	cases := []struct {
		args []string
		code int
		on   stream
		want []string
	}{
		{[]string{"--help"}, 0, out, []string{"Commands:", "serve [config.yml]", "garbage-collect", "(alias: gc)", "config check", "version", "help [command]", "--dry-run, -d", "REGISTRY_"}},
		{[]string{"-h"}, 0, out, []string{"Commands:"}},
		{[]string{"help"}, 0, out, []string{"Commands:", "--delete-untagged, -m"}},
		{[]string{"help", "gc"}, 0, out, []string{"Usage: registryd garbage-collect", "registryd gc (alias)", "--quiet, -q", "--force", "--help, -h"}},
		{[]string{"help", "config", "check"}, 0, out, []string{"Usage: registryd config check [config.yml]", "secrets masked"}},
		{[]string{"help", "nope"}, 2, errs, []string{`unknown command "nope"`, "Commands:"}},
		{[]string{"serve", "--help"}, 0, out, []string{"Usage: registryd serve [config.yml]", "embedded default", "--help, -h"}},
		{[]string{"serve", "-h"}, 0, out, []string{"Usage: registryd serve"}},
		{[]string{"garbage-collect", "--help"}, 0, out, []string{"Usage: registryd garbage-collect [flags] [config.yml]", "--dry-run, -d", "remove nothing"}},
		{[]string{"gc", "config.yml", "--help"}, 0, out, []string{"Usage: registryd garbage-collect"}},
		{[]string{"config", "check", "--help"}, 0, out, []string{"Usage: registryd config check"}},
		{[]string{"config", "--help"}, 0, out, []string{"config check [config.yml]"}},
		{[]string{"version", "--help"}, 0, out, []string{"Usage: registryd version"}},
		{[]string{"help", "--help"}, 0, out, []string{"Usage: registryd help [command]"}},
		{[]string{"version"}, 0, out, []string{"registryd " + version}},
		{[]string{"--version"}, 0, out, []string{"registryd " + version}},
		{[]string{}, 2, errs, []string{"Commands:"}},
		{[]string{"bogus"}, 2, errs, []string{`unknown command "bogus"`, "Commands:"}},
		{[]string{"--bogus"}, 2, errs, []string{`unknown flag "--bogus"`, "Commands:"}},
		{[]string{"config"}, 2, errs, []string{"expected a subcommand: config check"}},
		{[]string{"config", "lint"}, 2, errs, []string{"expected a subcommand: config check"}},
		{[]string{"serve", "--bogus"}, 2, errs, []string{"registryd serve: flag provided but not defined: -bogus", "Usage: registryd serve"}},
		{[]string{"gc", "--bogus", "config.yml"}, 2, errs, []string{"Usage: registryd garbage-collect", "--dry-run, -d"}},
		{[]string{"config", "check", "-x"}, 2, errs, []string{"Usage: registryd config check"}},
		{[]string{"version", "extra"}, 2, errs, []string{`unexpected argument "extra"`}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(append([]string{"registryd"}, tc.args...), " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			got, other := stdout.String(), stderr.String()
			if tc.on == errs {
				got, other = other, got
			}
			if other != "" {
				t.Errorf("unexpected output on the other stream:\n%s", other)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// The command table is the single source: every command, alias and flag
// in it shows up in the general help and in the command's own, each flag
// with a description.
func TestCLIHelpCoversTheTable(t *testing.T) {
	var general bytes.Buffer
	if code := run([]string{"help"}, &general, &bytes.Buffer{}); code != 0 {
		t.Fatal(code)
	}
	for _, c := range commands() {
		if c.summary == "" || c.about == "" {
			t.Errorf("%s: no summary or description", c.name)
		}
		if !strings.Contains(general.String(), "\n  "+c.name) {
			t.Errorf("help does not list %s", c.name)
		}
		for _, a := range c.aliases {
			if !strings.Contains(general.String(), "alias: "+a) {
				t.Errorf("help does not name the alias %s", a)
			}
		}
		var own bytes.Buffer
		if code := run(append(strings.Fields(c.name), "--help"), &own, &bytes.Buffer{}); code != 0 {
			t.Errorf("%s --help: exit %d", c.name, code)
		}
		c.flagSet().VisitAll(func(f *flag.Flag) {
			if f.Usage == "" {
				t.Errorf("%s: flag %s has no description", c.name, f.Name)
			}
			name := "--" + f.Name
			if strings.HasPrefix(f.Usage, shortPrefix) {
				name = ", -" + f.Name
			}
			for what, text := range map[string]string{"help": general.String(), c.name + " --help": own.String()} {
				if c.client && what == "help" {
					continue // the general help names client commands; their flags are in their own
				}
				if !strings.Contains(text, name) {
					t.Errorf("%s does not show %s's flag %s", what, c.name, name)
				}
			}
		})
	}
}
