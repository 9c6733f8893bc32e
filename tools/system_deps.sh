#!/usr/bin/env bash
# The Debian/Ubuntu packages the workspace needs; tools/bootstrap.sh runs this before it creates or builds anything.
#   cmake g++ make                       colcon builds lawam_msgs (ament_cmake, rosidl C/C++ code)
#   libegl1 libopengl0 libgl1-mesa-dri   headless MuJoCo cameras (EGL, libOpenGL, Mesa's software rasteriser)
#   python3.11 python3.11-venv python3.11-dev
#                                        pip-only setup on the distribution's Python 3.11 (venv module; Python.h for
#                                        the message package's C extensions), or when no python3.11 is found at all
# Video needs no system FFmpeg: PyAV's wheels carry their own (lawam_training.video_decode).
# As root the missing packages are installed with apt-get (noninteractive); otherwise it exits 1 with one line
# giving the exact command to run. Without dpkg-query (not Debian/Ubuntu) it only lists what to check.
#
# Usage: tools/system_deps.sh [PYTHON]   PYTHON: the pip-only setup's interpreter (omit it with a sourced ROS 2)
set -euo pipefail

say() { printf '[bootstrap] %s\n' "$*"; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

pkgs=(cmake g++ make libegl1 libopengl0 libgl1-mesa-dri)
if [ $# -ge 1 ]; then
  py=$(command -v "$1" || true)
  # Another interpreter (pyenv, a custom build) brings its own venv and headers; a wrong one is the bootstrap's
  # to refuse.
  if { [ -z "$py" ] && [ "$1" = python3.11 ]; } || [ "$(readlink -f "${py:-/nonexistent}")" = /usr/bin/python3.11 ]; then
    pkgs+=(python3.11 python3.11-venv python3.11-dev)
  fi
fi

if ! command -v dpkg-query >/dev/null; then
  say "not Debian/Ubuntu (no dpkg-query): the system packages are not checked; needed: ${pkgs[*]}" >&2
  exit 0
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  die "missing system packages; install them, then run this again: sudo apt-get install -y ${missing[*]}"
fi
command -v apt-get >/dev/null || die "missing system packages (${missing[*]}) and no apt-get to install them"
say "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || die "apt-get update failed; install these yourself: ${missing[*]}"
apt-get install -y -qq "${missing[@]}" || die "apt-get could not install: ${missing[*]}"
