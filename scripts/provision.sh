#!/usr/bin/env bash
# Provision a Debian or Ubuntu machine for postcopy-lab, idempotently.
#
#   scripts/provision.sh --ci                      what the tests need (used by .ci/run)
#   scripts/provision.sh --lab-host --project DIR  a lab host (used by the Vagrantfile)
#
# Options:
#   --ci                 install only what the test suite needs: qemu-system-x86, nftables,
#                        iproute2, socat (the bench's plain-forwarder baseline),
#                        libvirt-daemon-system and libvirt-clients (the system
#                        libvirtd is not started), and QEMU 10.0 beside the
#                        distribution's QEMU (below)
#   --lab-host           also Node.js >= 20 (from the distro, when it has it) and, on Ubuntu, the
#                        linux-modules-extra package that carries sch_netem
#   --project DIR        run `npm ci` in DIR afterwards (needs Node >= 20)
#   --qemu10-prefix DIR  where QEMU 10.0 goes (default /opt/qemu-10.0)
#   --no-qemu10          only the distribution's QEMU
#   --dry-run            print what would be done, change nothing
#
# Two QEMUs: the distribution's (7.2 on Debian 12) and, on Debian 12 only, 10.0 from Debian's
# bookworm-backports. That suite is added with the mirror and key of the machine's own
# `bookworm` source (/etc/apt/sources.list.d/postcopy-lab-backports.sources; apt pins
# backports at priority 100, so nothing installed from it unless asked), and its packages are
# unpacked, not installed, under PREFIX/root, with PREFIX/bin/qemu-system-x86_64 a wrapper; it
# sees only its own modules and firmware (qemu-bundle): the distribution's QEMU stays as it was.
#
# Only packages from the machine's configured Debian/Ubuntu mirror are fetched; nothing else
# is downloaded. Running it twice changes nothing the second time: packages already installed
# are skipped, `apt-get update` runs only when something is missing, and QEMU 10.0 is not
# downloaded again when it is already unpacked and reports 10.0.
set -euo pipefail

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }

mode=""
project=""
dry_run=0
qemu10=1
qemu10_prefix=/opt/qemu-10.0
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) mode=ci ;;
    --lab-host) mode=lab-host ;;
    --project)
      [ $# -ge 2 ] || { echo "provision: --project needs a directory" >&2; exit 2; }
      project="$2"
      shift
      ;;
    --project=*) project="${1#--project=}" ;;
    --qemu10-prefix)
      [ $# -ge 2 ] || { echo "provision: --qemu10-prefix needs a directory" >&2; exit 2; }
      qemu10_prefix="$2"
      shift
      ;;
    --qemu10-prefix=*) qemu10_prefix="${1#--qemu10-prefix=}" ;;
    --no-qemu10) qemu10=0 ;;
    --dry-run) dry_run=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "provision: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$mode" ] || { echo "provision: choose --ci or --lab-host (try --help)" >&2; exit 2; }
case "$qemu10_prefix" in
  /*) qemu10_prefix="${qemu10_prefix%/}" ;;
  *) echo "provision: --qemu10-prefix needs an absolute directory, not '$qemu10_prefix'" >&2; exit 2 ;;
esac

say() { printf 'provision: %s\n' "$*"; }
warn() { printf 'provision: WARNING: %s\n' "$*" >&2; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [ "$dry_run" = 1 ]; then say "would run: $*"; return 0; fi
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# ---- which distribution ----
if [ ! -r /etc/os-release ]; then
  echo "provision: /etc/os-release is missing; this script supports Debian and Ubuntu only" >&2
  exit 1
fi
# shellcheck disable=SC1091
. /etc/os-release
distro="${ID:-unknown}"
case " ${ID:-} ${ID_LIKE:-} " in
  *" debian "* | *" ubuntu "*) ;;
  *) echo "provision: ${PRETTY_NAME:-this system} is not Debian or Ubuntu; install qemu-system-x86, nftables, iproute2, socat and Node.js 20+ by hand" >&2; exit 1 ;;
esac
say "$mode on ${PRETTY_NAME:-$distro}, kernel $(uname -r)"

export DEBIAN_FRONTEND=noninteractive
updated=0
apt_update_once() {
  if [ "$updated" = 0 ]; then
    as_root apt-get update -qq
    updated=1
  fi
}
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
# Install the packages not installed yet; nothing at all (not even apt-get update) if none.
ensure_packages() {
  local missing=() p
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then say "already installed: $*"; return 0; fi
  say "installing: ${missing[*]}"
  apt_update_once
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
# The major version apt would install for a package ("" if it has no candidate).
candidate_major() {
  apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *\([0-9]*:\)\{0,1\}\([0-9][0-9]*\).*/\2/p' | head -n 1
}
node_major() { command -v node >/dev/null 2>&1 && node -p 'process.versions.node.split(".")[0]' 2>/dev/null || true; }

# ---- what the tests and the labs need ----
# qemu-system-x86: the QEMU backend (SeaBIOS comes with it; no NIC ROMs are needed: the lab
# guests run with -nodefaults). nftables and iproute2: the kernel link (netns, veth, tc, nft).
# socat: the bench's baseline, a plain C forwarder the relay is measured against.
ensure_packages qemu-system-x86 nftables iproute2 socat

# libvirt-daemon-system and libvirt-clients: the libvirt backend, which starts its own two
# daemons in the run's namespaces (src/libvirt/pair.ts) and never uses the system's. So the
# packages' maintainer scripts must not start the system libvirtd (nor virtlogd, virtlockd):
# invoke-rc.d and deb-systemd-invoke both ask /usr/sbin/policy-rc.d first, and exit 101 there
# means "not now". Ours is in place only during the install, and only if there was none.
ensure_libvirt() {
  local missing=() p
  for p in libvirt-daemon-system libvirt-clients; do installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then say "already installed: libvirt-daemon-system libvirt-clients"; return 0; fi
  if [ "$dry_run" = 1 ]; then
    say "would install ${missing[*]} with a policy-rc.d that keeps the system libvirtd stopped"
    return 0
  fi
  local policy=/usr/sbin/policy-rc.d ours=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# postcopy-lab provision.sh: no service starts while libvirt installs\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 0755 "$policy"
    ours=1
  fi
  ensure_packages "${missing[@]}" || { [ "$ours" = 0 ] || as_root rm -f "$policy"; return 1; }
  [ "$ours" = 0 ] || as_root rm -f "$policy"
}
ensure_libvirt

incomplete=()

# ---- QEMU 10.0 beside the distribution's ----
# Kept in this one file: Vagrant's shell provisioner uploads only this script into the guest.
QEMU10_PACKAGES=(qemu-system-x86 qemu-system-common qemu-system-data seabios)
# POSTCOPY_LAB_APT_ETC: only for the tests, to read made-up sources (apt itself still reads /etc/apt).
apt_etc="${POSTCOPY_LAB_APT_ETC:-/etc/apt}"
BACKPORTS_SOURCE="$apt_etc/sources.list.d/postcopy-lab-backports.sources"

is_qemu10() { [ -x "$1" ] && "$1" --version 2>/dev/null | head -n 1 | grep -Eq 'version 10\.0([. ]|$)'; }

# Whether any configured apt source (deb822 or one-line) already has suite $1.
suite_configured() {
  grep -Eqs "^[[:space:]]*(Suites:|deb[[:space:]])(.*[[:space:]])?$1([[:space:]]|\$)" \
    "$apt_etc/sources.list" "$apt_etc"/sources.list.d/*.list "$apt_etc"/sources.list.d/*.sources
}

# The machine's own source for suite $1, as "URI|Signed-By|Components" (Signed-By may be empty,
# or EMBEDDED for a key written inside the .sources file). Nothing printed when there is none.
debian_source() {
  local f
  for f in "$apt_etc"/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk -v want="$1" '
      function flush() {
        if (!found && (" " types " ") ~ / deb / && (" " suites " ") ~ (" " want " ") && tolower(enabled) != "no" && uris != "") {
          split(uris, u, " "); print u[1] "|" signed "|" comps; found = 1
        }
        types = suites = uris = signed = comps = enabled = key = ""
      }
      /^#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[A-Za-z-]+:/ {
        key = tolower(substr($0, 1, index($0, ":") - 1)); val = substr($0, index($0, ":") + 1)
        gsub(/^[ \t]+|[ \t]+$/, "", val); gsub(/[ \t]+/, " ", val)
        if (key == "types") types = val; else if (key == "suites") suites = val
        else if (key == "uris") uris = val; else if (key == "signed-by") signed = val
        else if (key == "components") comps = val; else if (key == "enabled") enabled = val
        next
      }
      key == "signed-by" { signed = "EMBEDDED" }
      END { flush() }
    ' "$f"
  done
  # One-line form: deb [signed-by=/path arch=amd64] URI SUITE COMPONENT...
  for f in "$apt_etc/sources.list" "$apt_etc"/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk -v want="$1" '
      $1 != "deb" { next }
      {
        line = $0; signed = ""
        if (match(line, /\[[^]]*\]/)) {
          opts = substr(line, RSTART + 1, RLENGTH - 2); line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
          n = split(opts, o, /[ \t]+/)
          for (i = 1; i <= n; i++) if (tolower(o[i]) ~ /^signed-by=/) signed = substr(o[i], 11)
        }
        n = split(line, w, /[ \t]+/)
        if (w[3] != want) next
        comps = ""; for (i = 4; i <= n; i++) if (w[i] != "") comps = comps (comps ? " " : "") w[i]
        print w[2] "|" signed "|" comps; exit
      }
    ' "$f"
  done
}

qemu10_fail() {
  echo "provision: QEMU 10.0: $*" >&2
  exit 1
}

# The wrapper PREFIX/bin/qemu-system-x86_64: relocatable (it finds root/ beside its own
# directory), and still right when called through a symlink.
qemu10_wrapper() {
  cat <<'WRAPPER'
#!/bin/sh
# QEMU 10.0 from Debian's bookworm-backports, unpacked beside the distribution's QEMU by
# postcopy-lab's scripts/provision.sh. Its modules, firmware and data come from ../root only:
# ../root/usr/bin/qemu-bundle relocates QEMU's compiled-in /usr paths there.
exec "$(dirname "$(readlink -f "$0")")/../root/usr/bin/qemu-system-x86_64" "$@"
WRAPPER
}

# QEMU 10.0 must see only its own files under PREFIX/root. Its compiled-in paths are Debian's
# /usr ones, where the distribution's 7.2 keeps its own: QEMU_MODULE_DIR only adds a directory
# searched before them, so a module 10.0's packages lack (ui-opengl, for `-display help` or
# libvirt's probe) was still loaded from 7.2's and refused ("Only modules from the same build
# can be loaded"). QEMU's own relocation does it instead: when a directory qemu-bundle sits
# beside the binary, each compiled-in path P (modules, firmware, data) is read as qemu-bundle/P
# (how QEMU runs from its build tree). qemu-bundle/usr -> ../.. makes them PREFIX/root/usr's,
# and a module 10.0 has not got is simply absent. Idempotent: only what differs is written.
qemu10_layout() {
  local prefix="$1" bin="$1/bin/qemu-system-x86_64" bundle="$1/root/usr/bin/qemu-bundle"
  if [ "$(readlink "$bundle/usr" 2>/dev/null)" != ../.. ]; then
    if [ "$dry_run" = 1 ]; then
      say "would link $bundle/usr -> ../.. (QEMU 10.0's compiled-in /usr paths, modules included, become $prefix/root/usr)"
    else
      say "linking $bundle/usr -> ../.. (QEMU 10.0's compiled-in /usr paths, modules included, become $prefix/root/usr)"
      as_root mkdir -p "$bundle"
      as_root ln -sfn ../.. "$bundle/usr"
    fi
  fi
  if ! qemu10_wrapper | cmp -s - "$bin"; then
    if [ "$dry_run" = 1 ]; then
      say "would write $bin (a wrapper that runs $prefix/root/usr/bin/qemu-system-x86_64)"
    else
      say "writing $bin (a wrapper that runs $prefix/root/usr/bin/qemu-system-x86_64)"
      as_root mkdir -p "$prefix/bin"
      qemu10_wrapper | as_root tee "$bin.new" >/dev/null
      as_root chmod 0755 "$bin.new"
      as_root mv "$bin.new" "$bin"
    fi
  fi
  # The proof: 7.2's modules are refused by name when 10.0 tries them.
  if [ "$dry_run" = 0 ] && "$bin" -display help 2>&1 | grep -q 'same build'; then
    qemu10_fail "$bin still tries the distribution's QEMU modules: $("$bin" -display help 2>&1 | grep -m 1 'failed to initialize module')"
  fi
}

provision_qemu10() {
  local prefix="$qemu10_prefix" bin="$qemu10_prefix/bin/qemu-system-x86_64"
  # Unpacked already (by this script, or an earlier one whose wrapper let 7.2's modules in):
  # only the layout is brought up to date.
  if is_qemu10 "$prefix/root/usr/bin/qemu-system-x86_64" && is_qemu10 "$bin"; then
    say "QEMU 10.0 already at $bin ($("$bin" --version | head -n 1))"
    qemu10_layout "$prefix"
    return 0
  fi
  if [ "$distro" != debian ] || [ "${VERSION_CODENAME:-}" != bookworm ]; then
    say "QEMU 10.0 beside the distribution's comes from Debian 12's bookworm-backports; ${PRETTY_NAME:-this system} is not Debian 12, so only its own QEMU is installed (skipped)"
    return 0
  fi

  # The suite, from the same mirror and key as the machine's own bookworm source.
  if suite_configured bookworm-backports; then
    say "bookworm-backports already configured"
  else
    local src uri signed comps
    src="$(debian_source bookworm | head -n 1)"
    [ -n "$src" ] || qemu10_fail "no apt source with suite 'bookworm' in $apt_etc/sources.list or $apt_etc/sources.list.d/; add Debian 12's, or pass --no-qemu10"
    IFS='|' read -r uri signed comps <<<"$src"
    [ "$signed" != EMBEDDED ] || qemu10_fail "the bookworm source embeds its key in the .sources file; add bookworm-backports by hand (same URIs, Suites: bookworm-backports) or pass --no-qemu10"
    local text
    text="# Written by postcopy-lab's scripts/provision.sh: Debian's backports, for QEMU 10.0 (unpacked
# beside the distribution's QEMU, not installed). Backports are pinned at priority 100, so
# nothing is installed or upgraded from here unless asked for by name.
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: ${comps:-main}${signed:+
Signed-By: $signed}
"
    say "adding bookworm-backports from $uri: $BACKPORTS_SOURCE"
    if [ "$dry_run" = 1 ]; then
      printf '%s' "$text" | sed 's/^/provision:   | /'
    else
      printf '%s' "$text" | as_root tee "$BACKPORTS_SOURCE" >/dev/null
    fi
  fi
  # The lists, when apt does not know the suite yet (even if apt-get update ran above: that was
  # before the suite was added).
  if ! apt-cache policy qemu-system-x86 2>/dev/null | grep -q ' bookworm-backports/'; then
    as_root apt-get update -qq
  fi

  local tmp
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" EXIT
  # apt downloads as the _apt user: let it write here (else it warns and downloads as root).
  if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi
  say "downloading ${QEMU10_PACKAGES[*]} from bookworm-backports"
  if [ "$dry_run" = 1 ]; then
    say "would run: apt-get download ${QEMU10_PACKAGES[*]/%//bookworm-backports} (in a temporary directory)"
  else
    (cd "$tmp" && apt-get download -q "${QEMU10_PACKAGES[@]/%//bookworm-backports}")
  fi

  local stage="$prefix/root.new" deb
  say "unpacking into $prefix/root"
  as_root rm -rf "$stage"
  as_root mkdir -p "$stage"
  for deb in "$tmp"/*.deb; do
    [ -e "$deb" ] || continue
    as_root dpkg-deb -x "$deb" "$stage"
  done

  # Shared libraries: the ones 10.0 needs that 7.2 did not (Depends of the .debs, from the
  # machine's default suites; sonames are what matters, not the versions).
  if [ "$dry_run" = 0 ]; then
    local missing
    missing="$(ldd "$stage/usr/bin/qemu-system-x86_64" | awk '/not found/ { print $1 }')"
    if [ -n "$missing" ]; then
      local deps=() d
      for d in $(for deb in "$tmp"/*.deb; do dpkg-deb -f "$deb" Depends; done |
        tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g' | sort -u); do
        case " ${QEMU10_PACKAGES[*]} " in *" $d "*) continue ;; esac
        installed "$d" || deps+=("$d")
      done
      say "missing shared libraries: $(echo "$missing" | tr '\n' ' ')"
      [ ${#deps[@]} -gt 0 ] && { ensure_packages "${deps[@]}" || true; }
      missing="$(ldd "$stage/usr/bin/qemu-system-x86_64" | awk '/not found/ { print $1 }')"
      [ -z "$missing" ] || qemu10_fail "$stage/usr/bin/qemu-system-x86_64 needs $(echo "$missing" | tr '\n' ' ')and installing the Depends of the .debs (${deps[*]:-none missing}) did not provide them"
    fi
  else
    say "would check the shared libraries with ldd (and install the missing Depends)"
  fi
  as_root rm -rf "$prefix/root"
  as_root mv "$stage" "$prefix/root"

  qemu10_layout "$prefix"
  rm -rf "$tmp"
  trap - EXIT
  if [ "$dry_run" = 0 ]; then
    is_qemu10 "$bin" || qemu10_fail "$bin --version does not report 10.0: $("$bin" --version 2>&1 | head -n 1)"
    say "QEMU 10.0 at $bin ($("$bin" --version | head -n 1)); the distribution's stays at $(command -v qemu-system-x86_64 || echo '(none)')"
  fi
}

if [ "$qemu10" = 1 ]; then provision_qemu10; else say "QEMU 10.0 skipped (--no-qemu10)"; fi

if [ "$mode" = lab-host ]; then
  # sch_netem (latency, jitter, loss) lives in linux-modules-extra on Ubuntu's generic kernels.
  # Loaded or built in (/sys/module), or loadable (modinfo).
  if [ ! -d /sys/module/sch_netem ] && ! modinfo sch_netem >/dev/null 2>&1; then
    extra="linux-modules-extra-$(uname -r)"
    if [ "$distro" = ubuntu ] || apt-cache show "$extra" >/dev/null 2>&1; then
      apt_update_once
      if apt-cache show "$extra" >/dev/null 2>&1; then
        ensure_packages "$extra"
      else
        warn "sch_netem is missing and $extra is not available; the kernel link will offer the relay, or tbf for rate limits"
        incomplete+=("sch_netem")
      fi
    else
      warn "this kernel has no sch_netem module; the kernel link will offer the relay, or tbf for rate limits"
      incomplete+=("sch_netem")
    fi
  else
    say "sch_netem available"
  fi

  # Node.js >= 20, from the distribution only.
  have="$(node_major)"
  if [ -n "$have" ] && [ "$have" -ge 20 ]; then
    say "node $(node --version) already installed"
  else
    apt_update_once
    cand="$(candidate_major nodejs)"
    if [ -n "$cand" ] && [ "$cand" -ge 20 ]; then
      ensure_packages nodejs
      # Debian's npm is a separate package; NodeSource-style nodejs packages carry npm inside
      # and conflict with it, so only ask for it when npm is still missing.
      command -v npm >/dev/null 2>&1 || ensure_packages npm
    else
      warn "Node.js 20+ is needed but ${PRETTY_NAME:-this distribution} offers nodejs ${cand:-none}${have:+ (installed: $have)}; install Node 20+ yourself (nodejs.org or your organisation's mirror), or use a distribution that ships it (Debian 13, Ubuntu 24.10+), then re-run this script"
      incomplete+=("node>=20")
    fi
  fi
fi

# ---- the project ----
if [ -n "$project" ]; then
  have="$(node_major)"
  if [ "$dry_run" = 1 ]; then
    say "would run: npm ci (in $project)"
  elif [ -n "$have" ] && [ "$have" -ge 20 ]; then
    say "npm ci in $project"
    (cd "$project" && npm ci --no-audit --no-fund)
  else
    warn "skipping npm ci in $project: Node.js 20+ is not installed"
    incomplete+=("npm ci")
  fi
fi

if [ ${#incomplete[@]} -gt 0 ]; then
  echo "provision: incomplete: ${incomplete[*]} (see the warnings above)" >&2
  # A missing netem only narrows the kernel link; a missing Node stops the project.
  case " ${incomplete[*]} " in
    *"node>=20"* | *"npm ci"*) exit 3 ;;
  esac
fi
say "done"
