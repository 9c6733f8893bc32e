import os
from glob import glob

from setuptools import find_packages, setup

package_name = "lawam_bringup"
data_files = [
    ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
    (f"share/{package_name}", ["package.xml"]),
]
# launch/ and config/ live at the workspace root (single source); installed to share/lawam_bringup/.
WS = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
data_files += [
    (f"share/{package_name}/launch", sorted(glob(os.path.join(WS, "launch", "*.launch.py")))),
    (f"share/{package_name}/config", sorted(glob(os.path.join(WS, "config", "*.yaml")) + glob(os.path.join(WS, "config", "*.xml")))),
]
# The shipped default checkpoint of each simulated scene: checkpoints/<scene>/ -> share/lawam_bringup/checkpoints/<scene>/
PKG = os.path.relpath(os.path.dirname(os.path.abspath(__file__)))
for scene_dir in sorted(glob(os.path.join(PKG, "checkpoints", "*", ""))):
    scene = os.path.basename(os.path.normpath(scene_dir))
    files = sorted(f for f in glob(os.path.join(scene_dir, "*")) if os.path.isfile(f))
    data_files.append((f"share/{package_name}/checkpoints/{scene}", files))

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=data_files,
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="LaWAM maintainers",
    maintainer_email="lawam@example.com",
    description='LaWAM system descriptions, launch files and parameters; the `lawam launch` runner for machines without ROS 2 launch tooling.',
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            'lawam = lawam_bringup.cli:main',
            'demo_monitor = lawam_bringup.demo_monitor:main'
        ],
    },
)
