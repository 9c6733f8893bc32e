import os
from glob import glob

from setuptools import find_packages, setup

package_name = "lawam_sim"
data_files = [
    ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
    (f"share/{package_name}", ["package.xml"]),
]
setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=data_files,
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="LaWAM maintainers",
    maintainer_email="lawam@example.com",
    description="MuJoCo twins of the Franka Panda pick-and-place and the Quanta X1 bimanual towel fold, behind the real robots' ROS 2 interfaces.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            'franka_twin = lawam_sim.nodes.franka_twin:main',
            'quanta_twin = lawam_sim.nodes.quanta_twin:main',
            'lawam-eval = lawam_sim.nodes.evaluate:main'
        ],
    },
)
