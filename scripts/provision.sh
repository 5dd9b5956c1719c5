#!/usr/bin/env bash
# Provision a Debian or Ubuntu machine for postcopy-lab, idempotently.
#
#   scripts/provision.sh --ci                      what the tests need (used by .ci/run)
#   scripts/provision.sh --lab-host --project DIR  a lab host (used by the Vagrantfile)
#
# Options:
#   --ci            install only what the test suite needs: qemu-system-x86, nftables, iproute2
#   --lab-host      also Node.js >= 20 (from the distro, when it has it) and, on Ubuntu, the
#                   linux-modules-extra package that carries sch_netem
#   --project DIR   run `npm ci` in DIR afterwards (needs Node >= 20)
#   --dry-run       print what would be done, change nothing
#
# Only apt packages from the machine's configured repositories are installed; nothing else is
# downloaded. Running it twice changes nothing the second time: packages already installed are
# skipped, and `apt-get update` runs (once) only when something is missing.
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

mode=""
project=""
dry_run=0
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
    --dry-run) dry_run=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "provision: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$mode" ] || { echo "provision: choose --ci or --lab-host (try --help)" >&2; exit 2; }

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
  *) echo "provision: ${PRETTY_NAME:-this system} is not Debian or Ubuntu; install qemu-system-x86, nftables, iproute2 and Node.js 20+ by hand" >&2; exit 1 ;;
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
ensure_packages qemu-system-x86 nftables iproute2

incomplete=()

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
