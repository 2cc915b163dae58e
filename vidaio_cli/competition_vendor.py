"""What the competition image needs from this repository: the import closure of the route service.

Only `miner/compression/` reaches the image (spec §2.1), so the exporter copies the app's package whole and, from
the other first-party packages it may draw on, exactly the modules the app reaches through its imports (read
statically, lazy imports included). Every import outside them must be the standard library or an installed
distribution, which is pinned with its own dependencies at the installed versions. The closure must not reach
gRPC, protobuf or the generated stubs: the image has none of them, and a stub's descriptor line alone would fail
the subnet's 1000-byte rule."""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_DISTRIBUTION = "vidaio-mesh"
DEFAULT_APP = "competition_app.app:app"
# The packages the route service may draw from: its own package, the compressor's core and mesh's helpers.
DEFAULT_VENDORED = ("competition_app", "compressor_svc", "mesh")
# The validator starts the service with uvicorn (spec §3.1), whether or not the app imports it.
ALWAYS_REQUIRED = ("uvicorn",)
FORBIDDEN = ("grpc", "grpc_*", "google.protobuf", "mesh.v1")
NOT_COPIED_SUFFIXES = frozenset({".py", ".pyi", ".pyc", ".pyo"})


class VendorError(ValueError):
    """The app cannot be vendored as it stands; the message names the module and the import that broke it."""


@dataclass(frozen=True)
class AppSpec:
    """Which app to export and where its code may come from (configurable so the lead can point it elsewhere)."""

    app: str = DEFAULT_APP
    vendored: tuple[str, ...] = DEFAULT_VENDORED
    source_roots: tuple[Path, ...] = (REPO_ROOT,)

    @property
    def module(self) -> str:
        return self.app.partition(":")[0]

    @property
    def attribute(self) -> str:
        return self.app.partition(":")[2] or "app"

    @property
    def package(self) -> str:
        return self.module.split(".")[0]


@dataclass
class VendorPlan:
    """Files to copy (destination relative to the build context -> source) and the pinned requirements."""

    files: dict[str, Path] = field(default_factory=dict)
    requirements: list[str] = field(default_factory=list)


def _forbidden(name: str) -> bool:
    for pattern in FORBIDDEN:
        if pattern.endswith("*") and name.split(".")[0].startswith(pattern[:-1]):
            return True
        if name == pattern or name.startswith(pattern + "."):
            return True
    return False


class _Resolver:
    def __init__(self, spec: AppSpec):
        self.spec = spec
        self.roots: dict[str, Path] = {}
        for package in spec.vendored:
            root = next((r for r in spec.source_roots if (r / package / "__init__.py").is_file()), None)
            if root is None:
                raise VendorError(f"package {package} not found under {', '.join(map(str, spec.source_roots))}")
            self.roots[package] = root

    def source(self, module: str) -> Path | None:
        root = self.roots.get(module.split(".")[0])
        if root is None:
            return None
        base = root.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def module_name(self, path: Path) -> str:
        for package, root in self.roots.items():
            if path.is_relative_to(root / package):
                parts = path.relative_to(root).with_suffix("").parts
                return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        raise VendorError(f"{path} is not in a vendored package")


def _imports(path: Path, module: str) -> Iterable[tuple[str, bool, int]]:
    """(name, must_be_a_module, line) for each import; `from a import b` yields a (module) and a.b (maybe not)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError) as exc:
        raise VendorError(f"{path} does not parse: {exc}") from exc
    package_parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, True, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package_parts[: len(package_parts) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base, True, node.lineno
            for alias in node.names:
                if alias.name != "*":
                    yield f"{base}.{alias.name}", False, node.lineno


@functools.cache
def _distributions_by_module() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def _distribution_of(top: str) -> str | None:
    candidates = _distributions_by_module().get(top, [])
    candidates = [name for name in candidates if canonicalize_name(name) != PROJECT_DISTRIBUTION]
    if not candidates:
        return None
    headless = [name for name in candidates if name.endswith("-headless")]
    return sorted(headless or candidates)[0]


def pinned_requirements(distributions: Iterable[str]) -> list[str]:
    """`name==version` for each distribution and everything it requires here (markers evaluated, no extras)."""
    pinned: dict[str, str] = {}
    pending = list(distributions)
    while pending:
        name = pending.pop()
        key = canonicalize_name(name)
        if key in pinned:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise VendorError(f"{name} is required but not installed, so it cannot be pinned") from exc
        pinned[key] = f"{dist.metadata['Name']}=={dist.version}"
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return sorted(pinned.values(), key=str.lower)


def plan_vendoring(spec: AppSpec) -> VendorPlan:
    """Walk the app's imports; refuse anything forbidden, unknown, or first-party but not vendored."""
    if spec.package not in spec.vendored:
        raise VendorError(f"the app's package {spec.package} must be one of the vendored packages")
    resolver = _Resolver(spec)
    app_source = resolver.source(spec.module)
    if app_source is None:
        raise VendorError(f"module {spec.module} not found")
    app_root = resolver.roots[spec.package] / spec.package
    queue = sorted(app_root.rglob("*.py"))
    seen: set[Path] = set()
    third_party: set[str] = set(ALWAYS_REQUIRED)
    while queue:
        path = queue.pop()
        if path in seen or "__pycache__" in path.parts:
            continue
        seen.add(path)
        module = resolver.module_name(path)
        parts = module.split(".")
        queue += [init for depth in range(1, len(parts) + 1)
                  if (init := resolver.source(".".join(parts[:depth]))) and init.name == "__init__.py"]
        for name, must_exist, line in _imports(path, module):
            where = f"{path.name}:{line} ({module})"
            if _forbidden(name):
                raise VendorError(f"{where} imports {name}: the image has no gRPC, protobuf or generated stubs")
            top = name.split(".")[0]
            if top in resolver.roots:
                found = resolver.source(name)
                if found is None and must_exist:
                    raise VendorError(f"{where} imports {name}, which is not a module of the vendored packages")
                if found is not None:
                    queue.append(found)
            elif top in sys.stdlib_module_names or not top:
                continue
            elif (distribution := _distribution_of(top)) is not None:
                third_party.add(distribution)
            else:
                raise VendorError(f"{where} imports {name}: neither vendored ({', '.join(spec.vendored)}), the "
                                  "standard library, nor an installed distribution")
    plan = VendorPlan(requirements=pinned_requirements(third_party))
    folders: dict[Path, Path] = {}
    for path in sorted(seen):
        root = resolver.roots[resolver.module_name(path).split(".")[0]]
        plan.files[path.relative_to(root).as_posix()] = path
        folders[path.parent] = root
    for folder, root in sorted(folders.items()):
        plan.files.update(_package_data(folder, root))
    return plan


def _package_data(directory: Path, root: Path) -> dict[str, Path]:
    """Non-Python files beside a vendored module that the code reads at run time (e.g. compressor_svc/data/*.json).
    Folders that are packages of their own are left to the closure, so generated stubs never travel as data."""
    files = {}
    for path in sorted(directory.rglob("*")):
        between = path.parent.relative_to(directory).parts
        if not path.is_file() or path.suffix in NOT_COPIED_SUFFIXES or "__pycache__" in between:
            continue
        if any(directory.joinpath(*between[: depth + 1], "__init__.py").is_file() for depth in range(len(between))):
            continue
        files[path.relative_to(root).as_posix()] = path
    return files
