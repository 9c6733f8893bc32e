"""Workspace-wide pytest fixtures."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.abspath(__file__))
# test/ (ros_isolation) and test/support (fakes and helpers: test code stays out of the installed packages)
sys.path[:0] = [os.path.join(ROOT, "test"), os.path.join(ROOT, "test", "support")]

from ros_isolation import isolated_ros_env  # noqa: E402


@pytest.fixture
def ros_env(worker_domain_id):
    """Environment for child processes: this test's own ROS_DOMAIN_ID, localhost-only discovery."""
    return isolated_ros_env(worker_domain_id)


@pytest.fixture
def worker_domain_id():
    from ros_isolation import next_domain_id
    domain = next_domain_id()
    old = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    yield domain
    if old is None:
        os.environ.pop("ROS_DOMAIN_ID", None)
    else:
        os.environ["ROS_DOMAIN_ID"] = old
