package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/registryd/registryd/client/cli"
)

// completionCommand is `registryd completion bash|zsh`: a script generated
// from the command table (every command, subcommand and flag), which also
// asks `registryd __complete` for registries, repositories and tags.
func completionCommand() *command {
	return &command{
		name:    "completion",
		args:    "bash|zsh",
		summary: "print a shell completion script (commands, flags, registries, repositories, tags)",
		about: `Prints a completion script for bash or zsh. It completes commands,
subcommands and flags from the command table, config files for the server's
commands, and, for the client's, references: registries you logged in to
(docker's config), then repository names from the registry's catalog and
tags from its tag list (the registry is asked on each TAB, with a short
timeout).

Examples:
  source <(registryd completion bash)            # this shell
  registryd completion bash > /etc/bash_completion.d/registryd
  registryd completion zsh > "${fpath[1]}/_registryd"   # zsh, then compinit`,
		flags: func(fs *flag.FlagSet) runFunc {
			return func(_ context.Context, args []string, stdout, stderr io.Writer) int {
				if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
					fmt.Fprintln(stderr, "registryd completion: expected bash or zsh")
					return 2
				}
				if args[0] == "bash" {
					fmt.Fprint(stdout, bashCompletion())
				} else {
					fmt.Fprint(stdout, zshCompletion())
				}
				return 0
			}
		},
	}
}

// completeCommand is the hidden `registryd __complete WORD`, which the
// scripts call for a reference being typed.
func completeReference(ctx context.Context, args []string, stdout io.Writer) int {
	word := ""
	if len(args) > 0 {
		word = args[0]
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for _, c := range cli.CompleteReference(ctx, word) {
		fmt.Fprintln(stdout, c)
	}
	return 0
}

// completionTable is what both scripts need of the command table.
type completionTable struct {
	first  []string            // first words
	second map[string][]string // group -> second words ("repo" -> ls, rm)
	flags  map[string][]string // command name -> --flags
	refs   map[string]bool     // command name -> takes references
}

func completionData() completionTable {
	t := completionTable{second: map[string][]string{}, flags: map[string][]string{}, refs: map[string]bool{}}
	add := func(name string, c *command) {
		words := strings.Fields(name)
		if !slices.Contains(t.first, words[0]) {
			t.first = append(t.first, words[0])
		}
		if len(words) == 2 && !slices.Contains(t.second[words[0]], words[1]) {
			t.second[words[0]] = append(t.second[words[0]], words[1])
		}
		key := strings.Join(words, "_")
		c.flagSet().VisitAll(func(f *flag.Flag) {
			fl := "--" + f.Name
			if len(f.Name) == 1 {
				fl = "-" + f.Name
			}
			if !slices.Contains(t.flags[key], fl) {
				t.flags[key] = append(t.flags[key], fl)
			}
		})
		t.flags[key] = append(t.flags[key], "--help")
		if c.client {
			t.refs[key] = true
		}
	}
	for _, c := range commands() {
		add(c.name, c)
		for _, a := range c.aliases {
			if !(a == "gc") { // gc is also the client's gc: its flags are merged below
				add(a, c)
			}
		}
	}
	// "gc": the offline collection's flags and the client's.
	for _, f := range t.flags["garbage-collect"] {
		if !slices.Contains(t.flags["gc"], f) {
			t.flags["gc"] = append(t.flags["gc"], f)
		}
	}
	return t
}

func bashCompletion() string {
	t := completionData()
	var b strings.Builder
	b.WriteString(`# bash completion for registryd (registryd completion bash)
_registryd() {
    local cur="${COMP_WORDS[COMP_CWORD]}" cmd="" i w
    COMPREPLY=()
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W "` + strings.Join(t.first, " ") + `" -- "$cur"))
        return
    fi
    cmd="${COMP_WORDS[1]}"
    case "$cmd" in
`)
	for _, g := range slices.Sorted(maps.Keys(t.second)) {
		fmt.Fprintf(&b, `    %s)
        if [[ $COMP_CWORD -eq 2 ]]; then
            COMPREPLY=($(compgen -W "%s" -- "$cur"))
            return
        fi
        cmd="%s_${COMP_WORDS[2]}" ;;
`, g, strings.Join(t.second[g], " "), g)
	}
	b.WriteString(`    esac
    local flags="" refs=0
    case "$cmd" in
`)
	for _, k := range slices.Sorted(maps.Keys(t.flags)) {
		refs := 0
		if t.refs[k] {
			refs = 1
		}
		fmt.Fprintf(&b, "        %s) flags=%q; refs=%d ;;\n", k, strings.Join(t.flags[k], " "), refs)
	}
	b.WriteString(`    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return
    fi
    if [[ $refs -eq 1 ]]; then
        # references: HOST, HOST/REPO, HOST/REPO:TAG; ':' is a word
        # separator for bash, so complete the whole current word.
        local word="$cur" line="${COMP_LINE:0:$COMP_POINT}"
        word="${line##* }"
        local IFS=$'\n' c j done=1
        COMPREPLY=($(registryd __complete "$word" 2>/dev/null))
        # A registry or a repository is not the end of a reference (a
        # repository may take :TAG): no space after it.
        for c in "${COMPREPLY[@]}"; do [[ "${c#*/}" == *:* ]] || done=0; done
        [[ $done -eq 0 ]] && compopt -o nospace 2>/dev/null
        if [[ "$word" == *:* && "$COMP_WORDBREAKS" == *:* ]]; then
            local strip="${word%"${word##*:}"}"
            for j in "${!COMPREPLY[@]}"; do COMPREPLY[$j]="${COMPREPLY[$j]#"$strip"}"; done
        fi
        return
    fi
    COMPREPLY=($(compgen -f -- "$cur"))
}
complete -F _registryd registryd
`)
	return b.String()
}

func zshCompletion() string {
	t := completionData()
	var b strings.Builder
	b.WriteString(`#compdef registryd
# zsh completion for registryd (registryd completion zsh)
_registryd() {
    local cmd flags refs=0
    local -a words2
    if (( CURRENT == 2 )); then
        compadd -- ` + strings.Join(t.first, " ") + `
        return
    fi
    cmd=${words[2]}
    case $cmd in
`)
	for _, g := range slices.Sorted(maps.Keys(t.second)) {
		fmt.Fprintf(&b, `        %s)
            if (( CURRENT == 3 )); then
                compadd -- %s
                return
            fi
            cmd="%s_${words[3]}" ;;
`, g, strings.Join(t.second[g], " "), g)
	}
	b.WriteString(`    esac
    case $cmd in
`)
	for _, k := range slices.Sorted(maps.Keys(t.flags)) {
		refs := 0
		if t.refs[k] {
			refs = 1
		}
		fmt.Fprintf(&b, "        %s) flags=(%s); refs=%d ;;\n", k, strings.Join(t.flags[k], " "), refs)
	}
	b.WriteString(`    esac
    if [[ $PREFIX == -* ]]; then
        compadd -- $flags
        return
    fi
    if (( refs )); then
        local -a cands
        cands=(${(f)"$(registryd __complete "$PREFIX" 2>/dev/null)"})
        local c
        for c in $cands; do
            # no space after a registry or a repository: :TAG may follow
            if [[ ${c#*/} == *:* ]]; then compadd -- $c; else compadd -S '' -- $c; fi
        done
        return
    fi
    _files
}
compdef _registryd registryd 2>/dev/null || true
`)
	return b.String()
}
