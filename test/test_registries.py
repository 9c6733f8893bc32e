"""Robot facts and topic names are defined once: the embodiment registry (lawam_policy/embodiments.py) and
lawam_policy/topics.py. No other product module spells one of their topics or the Franka hand width."""
import ast
from pathlib import Path

import pytest

from lawam_policy import topics
from lawam_policy.embodiments import EMBODIMENTS, FRANKA_HAND_MAX_WIDTH_M

ROOT = Path(__file__).resolve().parents[1]
HOMES = {ROOT / "src/lawam_policy/lawam_policy/embodiments.py", ROOT / "src/lawam_policy/lawam_policy/topics.py"}


def _registry_topics() -> set[str]:
    names = {v for k, v in vars(topics).items() if k.isupper() and isinstance(v, str)}
    for e in EMBODIMENTS.values():
        names |= {t for _, t in e.cameras} | set(e.target_topics) | set(e.measured_pose_topics)
        names |= set(e.gripper_state_topics.values()) | set(e.gripper_command_topics)
    return names


def _product_modules():
    for pkg in ("lawam_policy", "lawam_training", "lawam_sim", "lawam_bringup"):
        for path in sorted((ROOT / "src" / pkg / pkg).rglob("*.py")):
            if path not in HOMES:
                yield path


def _literals(path: Path):
    """String and number constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in docstrings:
            yield node.lineno, node.value


def _width_constants(path: Path):
    """Numbers given to something named *width* (a keyword, an assignment, an argument default or a
    parameter declared as P("..width..", value))."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        pairs = []
        if isinstance(node, ast.keyword) and node.arg:
            pairs.append((node.arg, node.value))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            pairs += [(getattr(t, "id", getattr(t, "attr", "")), node.value) for t in targets]
        elif isinstance(node, ast.arguments):
            args = node.posonlyargs + node.args
            pairs += list(zip([a.arg for a in args[len(args) - len(node.defaults):]], node.defaults))
            pairs += [(a.arg, d) for a, d in zip(node.kwonlyargs, node.kw_defaults) if d is not None]
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant):
            pairs.append((str(node.args[0].value), node.args[1]))
        for name, value in pairs:
            if "width" in name.lower() and isinstance(value, ast.Constant) and \
                    isinstance(value.value, float) and value.value == FRANKA_HAND_MAX_WIDTH_M:
                yield value.lineno, value.value


def test_topics_and_gripper_width_are_spelled_only_in_the_registries():
    names = _registry_topics()
    assert "/camera/color/image_raw" in names and "/lawam/task" in names
    found = []
    for path in _product_modules():
        hits = [(line, v) for line, v in _literals(path) if isinstance(v, str) and v in names]
        for line, value in hits + list(_width_constants(path)):
            found.append(f"{path.relative_to(ROOT)}:{line}: {value!r}")
    assert not found, "defined again outside lawam_policy/embodiments.py and topics.py:\n" + "\n".join(found)


@pytest.mark.parametrize("name", sorted(EMBODIMENTS))
def test_users_take_their_defaults_from_the_registry(name):
    from lawam_bringup.systems import SYSTEMS
    from lawam_policy.runtime.checkpoint_fit import DEFAULT_CAMERA_ROLES
    from lawam_training.topics import make_config

    e = EMBODIMENTS[name]
    cfg = make_config(name)
    assert cfg.cameras == e.camera_topics
    assert list(cfg.poses.values()) == list(e.measured_pose_topics)
    assert DEFAULT_CAMERA_ROLES[name] == e.camera_roles
    for system in (s for s in SYSTEMS.values() if s.embodiment == name):
        # the embodiment's default cameras, plus the optional ones its task takes (pick-and-place: the wrist),
        # in the registry's order, each on the registry's topic
        roles = system.camera_roles()
        assert set(e.camera_topics) <= set(roles) <= set(e.camera_roles)
        assert roles == [r for r in e.camera_roles if r in roles]
        assert system.camera_topics() == [e.camera_topic(r) for r in roles]
