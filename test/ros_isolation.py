"""Give every test its own ROS_DOMAIN_ID and keep discovery on localhost, so tests never cross-talk
with each other or reach a robot on the lab network."""
import itertools
import os

# The one source of test domain ids (fixtures, helpers, child processes, benchmarks): 101..232 stays clear
# of domain 0 (a lab robot's likeliest) and of 1..100, where `lawam launch` puts sim systems; Fast DDS on
# Linux supports ids up to 232. Consecutive calls in one process never repeat until the range wraps.
FIRST, COUNT = 101, 132
_counter = itertools.count()


def next_domain_id() -> int:
    """A fresh ROS_DOMAIN_ID for one test (by process id and a per-process counter)."""
    return FIRST + (os.getpid() * 7 + next(_counter)) % COUNT


def isolated_ros_env(domain_id: int) -> dict:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    return env
