# Environment of the LaWAM workspace; sourced by the Makefile, the console-script wrappers and tests.
# Usage: . tools/env.sh   (from anywhere; finds the workspace root itself)
_lawam_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export LAWAM_WS="$_lawam_root"
export VIRTUAL_ENV="$_lawam_root/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
# The pip wheels install ROS 2 into the venv itself: it is the underlay prefix.
if [ -z "${ROS_DISTRO:-}" ] || [ -d "$VIRTUAL_ENV/share/rclpy" ]; then
  case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}";; esac
fi
if [ -f "$_lawam_root/install/local_setup.bash" ] && [ -n "${BASH_VERSION:-}" ]; then
  # colcon's scripts read unset variables: relax `set -u` while sourcing, then restore it.
  case $- in *u*) _lawam_u=1; set +u;; *) _lawam_u=;; esac
  # shellcheck disable=SC1091
  . "$_lawam_root/install/local_setup.bash"
  [ -n "$_lawam_u" ] && set -u; unset _lawam_u
fi
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Never reach a lab network: discovery stays on this machine unless the caller says otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
# Fast, reliable discovery between processes on localhost (see config/fastdds_localhost.xml).
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_lawam_root/config/fastdds_localhost.xml}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
unset _lawam_root
