#!/usr/bin/env bash
# Installs everything `make test` needs on a Debian machine, idempotently:
#
#   - Debian packages: docker.io (dockerd + docker CLI for e2e/docker_test.go),
#     containerd (the daemon the mirror's ctr test starts), skopeo,
#     docker-registry (the reference registry, distribution 2.8, for
#     e2e/compat_test.go), chromium and a font (the web UI's browser tests,
#     e2e/ui_test.go, drive it headless), tmux and zsh (e2e/cli_tty_test.go
#     drives the client on a real terminal and tests zsh completion), plus the
#     basics (curl, git, make, gcc for -race).
#     apt-get runs only when one of them is missing, so a warm run costs nothing.
#   - Go tools pinned in tools/go.mod (the OCI distribution-spec conformance
#     suite, crane, oras, regctl), built into $REPO/.cache/bin. A tool is rebuilt
#     only when its binary is missing or older than tools/go.mod / tools/go.sum.
#   - containerd's ctr (the pull-through cache's e2e test pulls with it, with
#     a hosts.toml that sends ?ns=), version $ctr_version below, built with
#     `go install` from the module proxy (~4 minutes cold) into
#     $(go env GOPATH)/bin and copied to $REPO/.cache/bin/ctr.
#   - MinIO (the S3 tests' server), version $minio_version below, as
#     $REPO/.cache/bin/minio: copied from $(go env GOPATH)/bin/minio when that
#     is the pinned version (a clean clone on the same machine reuses it),
#     else built there with `go install` (~10 minutes cold) and copied.
#
# Environment:
#   REGISTRYD_TOOLS_BIN   where to put the tools (default: $REPO/.cache/bin)
#   REGISTRYD_SKIP_APT=1  do not touch Debian packages (e.g. non-root developer)
#   REGISTRYD_TOOLS_DISTRIBUTION=1
#                         also build distribution v3's registry (tools/distribution,
#                         a module of its own: heavy, ~4 min cold, for benchmarks
#                         only) as $REGISTRYD_TOOLS_BIN/registry-v3
#   REGISTRYD_TOOLS_ZOT=1 also build zot (benchmarks only) as $REGISTRYD_TOOLS_BIN/zot,
#                         from the git repository ZOT_GIT (a URL or a local clone;
#                         default https://github.com/project-zot/zot.git) at the
#                         pinned tag, with its dependencies from the module proxy
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${REGISTRYD_TOOLS_BIN:-$root/.cache/bin}"
export PATH="/usr/local/go/bin:$PATH"

log() { printf 'install-deps: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- Debian packages
apt_packages=(docker.io containerd skopeo docker-registry curl ca-certificates git make gcc libc6-dev chromium fonts-dejavu-core tmux zsh)

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

if [[ "${REGISTRYD_SKIP_APT:-}" != 1 ]]; then
	missing=()
	for p in "${apt_packages[@]}"; do
		installed "$p" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		sudo=()
		if [[ "$(id -u)" != 0 ]]; then sudo=(sudo -n); fi
		log "installing Debian packages: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
		# Keep the packages' init scripts from starting a system dockerd or a
		# docker-registry on :5000: the tests start their own, on their own
		# sockets and ports. Only done when no policy-rc.d exists already.
		policy=/usr/sbin/policy-rc.d
		made_policy=0
		if [[ ! -e "$policy" ]]; then
			printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
			"${sudo[@]}" chmod 755 "$policy"
			made_policy=1
		fi
		cleanup_policy() { if ((made_policy)); then "${sudo[@]}" rm -f "$policy"; fi; }
		trap cleanup_policy EXIT
		"${sudo[@]}" apt-get update -qq
		"${sudo[@]}" apt-get install -y -qq --no-install-recommends \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
			"${missing[@]}" >/dev/null
		cleanup_policy
		made_policy=0
		trap - EXIT
	else
		log "Debian packages present: ${apt_packages[*]}"
	fi
fi

# ---------------------------------------------------------------- Go
if ! command -v go >/dev/null; then
	log "go not found (expected /usr/local/go/bin/go)"
	exit 1
fi

# ---------------------------------------------------------------- Go tools
# tools/go.mod pins them with `tool` directives; `go build tool` builds them all.
tools=(conformance crane oras regctl)
stale=0
for t in "${tools[@]}"; do
	if [[ ! -x "$bin/$t" || "$root/tools/go.sum" -nt "$bin/$t" || "$root/tools/go.mod" -nt "$bin/$t" ]]; then
		stale=1
	fi
done
if ((stale)); then
	log "building ${tools[*]} into $bin (first time: a few minutes)"
	mkdir -p "$bin"
	start=$SECONDS
	(cd "$root/tools" && go build -mod=readonly -buildvcs=false -trimpath -o "$bin/" tool)
	# `go build` leaves an up-to-date binary's mtime alone; mark them fresh.
	for t in "${tools[@]}"; do touch "$bin/$t"; done
	log "built tools in $((SECONDS - start))s"
else
	log "tools up to date in $bin"
fi

# ---------------------------------------------------------------- MinIO
# The one place the MinIO version is pinned. It is a main module of its own,
# so `go install pkg@version` builds it with its own go.mod, outside ours.
minio_version=v0.0.0-20260212201848-7aac2a2c5b7c
minio_stamp="$bin/.minio-version"
if [[ -x "$bin/minio" && "$(cat "$minio_stamp" 2>/dev/null)" == "$minio_version" ]]; then
	log "minio $minio_version present in $bin"
else
	mkdir -p "$bin"
	gobin="$(go env GOPATH | cut -d: -f1)/bin"
	have() {
		[[ -x "$gobin/minio" ]] &&
			go version -m "$gobin/minio" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/minio/minio[[:space:]]+$minio_version([[:space:]]|\$)"
	}
	if ! have; then
		log "building minio $minio_version into $gobin (first time: ~10 minutes)"
		start=$SECONDS
		(cd / && go install "github.com/minio/minio@$minio_version")
		log "built minio in $((SECONDS - start))s"
	fi
	if ! have; then
		log "minio in $gobin is not $minio_version after go install"
		exit 1
	fi
	cp "$gobin/minio" "$bin/minio.tmp" && mv "$bin/minio.tmp" "$bin/minio"
	echo "$minio_version" >"$minio_stamp"
	log "minio $minio_version copied to $bin"
fi

# ---------------------------------------------------------------- ctr
# containerd's client, pinned here. v2's go.mod has no replace or exclude
# directives, so `go install pkg@version` builds it as released (v1.7's
# cannot be built that way). It drives Debian's containerd daemon with
# --local (client-side pulls, which read hosts.toml).
ctr_version=v2.4.2
ctr_stamp="$bin/.ctr-version"
if [[ -x "$bin/ctr" && "$(cat "$ctr_stamp" 2>/dev/null)" == "$ctr_version" ]]; then
	log "ctr $ctr_version present in $bin"
else
	mkdir -p "$bin"
	gobin="$(go env GOPATH | cut -d: -f1)/bin"
	have_ctr() {
		[[ -x "$gobin/ctr" ]] &&
			go version -m "$gobin/ctr" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/containerd/containerd/v2[[:space:]]+$ctr_version([[:space:]]|\$)"
	}
	if ! have_ctr; then
		log "building ctr $ctr_version into $gobin (first time: ~4 minutes)"
		start=$SECONDS
		(cd / && CGO_ENABLED=0 go install "github.com/containerd/containerd/v2/cmd/ctr@$ctr_version")
		log "built ctr in $((SECONDS - start))s"
	fi
	if ! have_ctr; then
		log "ctr in $gobin is not $ctr_version after go install"
		exit 1
	fi
	cp "$gobin/ctr" "$bin/ctr.tmp" && mv "$bin/ctr.tmp" "$bin/ctr"
	echo "$ctr_version" >"$ctr_stamp"
	log "ctr $ctr_version copied to $bin"
fi

# Optional: distribution v3 (benchmarks). Its own module keeps its ~100
# dependencies out of the tools above.
if [[ "${REGISTRYD_TOOLS_DISTRIBUTION:-}" == 1 ]]; then
	d="$root/tools/distribution"
	if [[ ! -x "$bin/registry-v3" || "$d/go.sum" -nt "$bin/registry-v3" || "$d/go.mod" -nt "$bin/registry-v3" ]]; then
		log "building distribution v3 registry into $bin/registry-v3 (first time: ~4 minutes)"
		mkdir -p "$bin"
		start=$SECONDS
		(cd "$d" && go build -mod=readonly -buildvcs=false -trimpath -o "$bin/registry-v3" github.com/distribution/distribution/v3/cmd/registry)
		touch "$bin/registry-v3"
		log "built registry-v3 in $((SECONDS - start))s"
	else
		log "registry-v3 up to date"
	fi
fi

# Optional: zot (benchmarks). Its module (zotregistry.dev/zot/v2) is not on
# the module proxy, so the source comes from git at the pinned tag (checked
# against the pinned commit) and only its dependencies from the proxy; the
# build flags are zot's own Makefile's (CGO off, encoding/json/v2).
if [[ "${REGISTRYD_TOOLS_ZOT:-}" == 1 ]]; then
	zot_tag=v2.1.20
	zot_commit=3b5796d834e8661ea661a5fcc47add8d4405aebf
	zot_git="${ZOT_GIT:-https://github.com/project-zot/zot.git}"
	zot_stamp="$bin/.zot-commit"
	if [[ -x "$bin/zot" && "$(cat "$zot_stamp" 2>/dev/null)" == "$zot_commit" ]]; then
		log "zot $zot_tag present in $bin"
	else
		src="$root/.cache/zot-src"
		rm -rf "$src"
		mkdir -p "$src" "$bin"
		log "fetching zot $zot_tag from $zot_git"
		git -C "$src" init -q
		git -C "$src" fetch -q --depth 1 "$zot_git" "refs/tags/$zot_tag"
		got="$(git -C "$src" rev-parse 'FETCH_HEAD^{commit}')"
		if [[ "$got" != "$zot_commit" ]]; then
			log "zot $zot_tag is $got in $zot_git, expected $zot_commit"
			exit 1
		fi
		git -C "$src" checkout -q FETCH_HEAD
		log "building zot $zot_tag into $bin/zot (first time: ~10 minutes)"
		start=$SECONDS
		bi=zotregistry.dev/zot/v2/pkg/buildinfo
		(cd "$src" && CGO_ENABLED=0 GOEXPERIMENT=jsonv2 go build -mod=readonly -buildvcs=false -trimpath \
			-ldflags "-X $bi.ReleaseTag=$zot_tag -X $bi.Commit=$zot_commit -X $bi.BinaryType=minimal -s -w" \
			-o "$bin/zot" ./cmd/zot)
		echo "$zot_commit" >"$zot_stamp"
		rm -rf "$src"
		log "built zot in $((SECONDS - start))s"
	fi
fi
