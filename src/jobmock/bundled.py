"""The specs that ship with jobmock, and turning a name or a path into a spec.

In the repository the specs live in ``openapi/``; a wheel carries the same files
as ``jobmock/specs/`` (see ``pyproject.toml``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from .errors import SpecError
from .spec import ApiSpec, load_spec

__all__ = ["bundled_names", "resolve_spec", "resource_dir", "spec_dir", "spec_path"]


def resource_dir(packaged: str, in_repository: str) -> Path:
    """``jobmock/<packaged>`` in an installed wheel, else ``<in_repository>/`` at the repo root."""
    here = Path(__file__).resolve().parent
    inside = here / packaged
    return inside if inside.is_dir() else here.parent.parent / in_repository


def spec_dir() -> Path:
    """The folder holding the bundled specs."""
    return resource_dir("specs", "openapi")


def bundled_names() -> list[str]:
    """Names of the bundled APIs, sorted."""
    return sorted(p.stem for p in spec_dir().glob("*.yaml"))


def spec_path(name_or_path: str | Path) -> Path:
    """The file for a bundled API name, or the given path if it is a file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml", ".json") or candidate.exists():
        if not candidate.is_file():
            raise SpecError(str(candidate), "", "an existing spec file")
        return candidate
    bundled = spec_dir() / f"{name_or_path}.yaml"
    if not bundled.is_file():
        raise SpecError(str(name_or_path), "",
                        f"a bundled API name {bundled_names()} or a path to a spec file")
    return bundled


@cache
def _load_cached(path: str, mtime: float) -> ApiSpec:
    return load_spec(path)


def resolve_spec(api: str | Path | ApiSpec) -> ApiSpec:
    """An :class:`ApiSpec` from a bundled name, a path, or a spec (returned as is)."""
    if isinstance(api, ApiSpec):
        return api
    path = spec_path(api)
    return _load_cached(str(path), path.stat().st_mtime)
