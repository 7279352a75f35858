"""The offline recipe: the agent image from Debian packages and the npm package, for a Docker
engine that reaches no image registry (only Debian's apt and npm are needed, on the host).

1. ``mmdebstrap`` makes a minimal Debian root file system with ``debian-packages.txt``, which
   ``docker import`` turns into ``loop-agent-debian:<hash>``.
2. ``npm pack`` fetches the CLI's native package and ``pip install --target`` the project's
   runtime dependencies; both are copied into a container of step 1, committed as
   ``loop-agent-base:<hash>`` with the entrypoint and the environment.
3. The project's package is copied into a container of step 2 and committed as the image the
   server runs, labelled with the versions and the build hash.

Each step is skipped when its tagged image exists; downloads are kept in the cache dir (the
root file system tarball, the npm tarball, the Python dependencies), so a rebuild after a code
change takes seconds and one after a pin change downloads only what changed.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors

from loop_server import __version__
from loop_server.agent_image._recipe import (
    BASE_REPOSITORY,
    CLAUDE_NATIVE_PACKAGE,
    DEBIAN_REPOSITORY,
    DEBIAN_SUITE,
    PACKAGE_DIR,
    Recipe,
    RecipeError,
    digest,
    package_files,
)
from loop_server.agent_image._status import (
    BUILD_LABEL,
    CLAUDE_VERSION_LABEL,
    SERVER_VERSION_LABEL,
)

Say = Callable[[str], None]

IMAGE_ENV = {
    # The no-telemetry switch: no telemetry, error reports, auto-updates or other calls that
    # are not the model's API (agent containers often have no network anyway).
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
}
ENTRYPOINT = '["/usr/bin/tini", "--", "/usr/local/bin/loop-agent-entrypoint"]'
BUILD_LABEL_CHANGE = "LABEL " + BUILD_LABEL


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(root) / "loop-server" / "agent-image"


def build_offline(
    client: docker.DockerClient,
    recipe: Recipe,
    image: str,
    *,
    cache_dir: Path,
    say: Say,
    force: bool = False,
) -> bool:
    """Build ``image``; False when it was already current (nothing done)."""
    build = recipe.build_hash()
    if not force and _label(client, image, BUILD_LABEL) == build:
        say(f"{image} is current (build {build}); nothing to do")
        return False
    cache_dir.mkdir(parents=True, exist_ok=True)
    debian = _debian_layer(client, recipe, cache_dir, say, force)
    base = _base_layer(client, recipe, debian, cache_dir, say, force)
    say(f"adding loop-server {__version__} to {image}")
    old_id = _image_id(client, image)
    labels = {
        BUILD_LABEL: build,
        SERVER_VERSION_LABEL: __version__,
        CLAUDE_VERSION_LABEL: recipe.claude_version,
        "loop.agent.base": recipe.base_hash,
    }
    _commit_with(client, base, _package_tar(), image, labels=labels)
    if old_id and old_id != _image_id(client, image):
        _remove_quietly(client, old_id)
    say(f"built {image} (build {build}, Claude Code {recipe.claude_version})")
    return True


# -- layer 1: Debian ------------------------------------------------------------------------


def _debian_layer(
    client: docker.DockerClient, recipe: Recipe, cache_dir: Path, say: Say, force: bool
) -> str:
    tag = f"{DEBIAN_REPOSITORY}:{recipe.debian_hash}"
    if not force and _image_id(client, tag):
        say(f"{tag} is cached")
        return tag
    rootfs = cache_dir / f"rootfs-{recipe.debian_hash}.tar"
    if force or not rootfs.exists():
        mmdebstrap = shutil.which("mmdebstrap")
        if mmdebstrap is None:
            raise RecipeError(
                "the offline recipe needs mmdebstrap (Debian/Ubuntu: apt-get install "
                "mmdebstrap), or use --recipe dockerfile where Docker reaches a registry"
            )
        say(f"making a Debian {DEBIAN_SUITE} root file system: {' '.join(recipe.debian_packages)}")
        # mmdebstrap picks the output format by the name's suffix: keep ".tar" last.
        partial = rootfs.with_name(f"partial-{rootfs.name}")
        _run(
            [
                mmdebstrap,
                "--variant=minbase",
                "--include=" + ",".join(recipe.debian_packages),
                "--aptopt=Acquire::Retries 3",
                # No docs or man pages: nobody reads them in an agent container.
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                DEBIAN_SUITE,
                str(partial),
            ],
            "mmdebstrap",
        )
        partial.replace(rootfs)
    say(f"importing {tag}")
    repository, _, version = tag.partition(":")
    try:
        with rootfs.open("rb") as data:
            client.api.import_image(src=data, repository=repository, tag=version)
    except docker.errors.DockerException as err:
        raise RecipeError(f"docker import of {rootfs} failed: {err}") from err
    return tag


# -- layer 2: the CLI and the Python dependencies --------------------------------------------


def _base_layer(
    client: docker.DockerClient,
    recipe: Recipe,
    debian: str,
    cache_dir: Path,
    say: Say,
    force: bool,
) -> str:
    tag = f"{BASE_REPOSITORY}:{recipe.base_hash}"
    if not force and _image_id(client, tag):
        say(f"{tag} is cached")
        return tag
    claude = _claude_binary(recipe.claude_version, cache_dir, say)
    site = _python_site(recipe, cache_dir, say)
    with tempfile.TemporaryDirectory(prefix="loop-agent-base-") as tmp:
        archive = Path(tmp) / "layer.tar"
        with tarfile.open(archive, "w") as tar:
            _add_file(tar, claude, "usr/local/bin/claude", 0o755)
            _add_bytes(tar, recipe.file("entrypoint.sh"), "usr/local/bin/loop-agent-entrypoint")
            _add_bytes(tar, recipe.file("loop-server.sh"), "usr/local/bin/loop-server")
            _add_tree(tar, site, "opt/loop-server/site")
        say(f"committing {tag}")
        changes = [f"ENV {k}={v}" for k, v in IMAGE_ENV.items()]
        changes += [f"ENTRYPOINT {ENTRYPOINT}", 'CMD ["claude"]', "WORKDIR /"]
        with archive.open("rb") as data:
            _commit_with(client, debian, data, tag, changes=changes)
    return tag


def _claude_binary(version: str, cache_dir: Path, say: Say) -> Path:
    """The CLI's native binary from the npm tarball (downloaded once per version)."""
    npm_dir = cache_dir / "npm"
    binary = npm_dir / f"claude-{version}"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RecipeError("the offline recipe needs npm to fetch the Claude Code CLI")
    npm_dir.mkdir(parents=True, exist_ok=True)
    spec = f"{CLAUDE_NATIVE_PACKAGE}@{version}"
    say(f"fetching {spec} from npm")
    with tempfile.TemporaryDirectory(prefix="loop-agent-npm-", dir=npm_dir) as tmp:
        out = _run([npm, "pack", "--silent", "--pack-destination", tmp, spec], "npm pack")
        name = out.strip().splitlines()[-1] if out.strip() else ""
        tarball = Path(tmp) / name
        if not name or not tarball.is_file():
            raise RecipeError(f"npm pack {spec} produced no tarball (said: {out.strip()!r})")
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("package/claude")
            if member is None:
                raise RecipeError(f"{spec} holds no package/claude")
            partial = binary.with_suffix(".partial")
            with partial.open("wb") as out_file:
                shutil.copyfileobj(member, out_file)
        partial.chmod(0o755)
        partial.replace(binary)
    return binary


def _python_site(recipe: Recipe, cache_dir: Path, say: Say) -> Path:
    """The runtime dependencies, installed for the image's Python 3.11 (once per pin set)."""
    site = cache_dir / f"python-{digest(list(recipe.requirements))}"
    if (site / ".complete").exists():
        return site
    say(f"installing Python dependencies: {' '.join(recipe.requirements)}")
    shutil.rmtree(site, ignore_errors=True)
    argv = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--target",
        str(site),
    ]
    if sys.version_info[:2] != (3, 11):
        # Another Python here: fetch wheels built for the image's (CPython 3.11, glibc 2.36).
        argv += ["--python-version", "3.11", "--implementation", "cp", "--only-binary=:all:"]
        argv += ["--platform", "manylinux_2_36_x86_64", "--platform", "manylinux2014_x86_64"]
    _run([*argv, *recipe.requirements], "pip install")
    (site / ".complete").write_text("")
    return site


# -- layer 3: this project ------------------------------------------------------------------


def _package_tar() -> io.BytesIO:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for path in package_files():
            relative = path.relative_to(PACKAGE_DIR)
            _add_file(tar, path, f"opt/loop-server/app/loop_server/{relative}", 0o644)
    data.seek(0)
    return data


# -- helpers --------------------------------------------------------------------------------


def _commit_with(
    client: docker.DockerClient,
    from_image: str,
    archive: Any,
    tag: str,
    *,
    changes: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> None:
    """A container of ``from_image`` with ``archive`` unpacked at /, committed as ``tag``."""
    repository, _, version = tag.rpartition(":") if ":" in tag else (tag, "", "latest")
    changes = list(changes or [])
    changes += [f"LABEL {k}={v}" for k, v in (labels or {}).items()]
    try:
        container = client.containers.create(from_image, command=["true"], network_mode="none")
    except docker.errors.DockerException as err:
        raise RecipeError(f"creating a build container of {from_image}: {err}") from err
    try:
        if not container.put_archive("/", archive):
            raise RecipeError(f"copying files into a container of {from_image} failed")
        container.commit(repository=repository, tag=version, changes=changes)
    except docker.errors.DockerException as err:
        raise RecipeError(f"committing {tag}: {err}") from err
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)


def _image_id(client: docker.DockerClient, name: str) -> str:
    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        return ""


def _label(client: docker.DockerClient, name: str, label: str) -> str:
    try:
        labels = client.images.get(name).labels or {}
    except docker.errors.ImageNotFound:
        return ""
    return str(labels.get(label, ""))


def _remove_quietly(client: docker.DockerClient, image_id: str) -> None:
    # Still used by a container, or tagged elsewhere: then it stays.
    with contextlib.suppress(docker.errors.DockerException):
        client.images.remove(image_id)


def _run(argv: list[str], what: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as err:
        raise RecipeError(f"{what} could not run: {err}") from err
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise RecipeError(f"{what} failed (exit {done.returncode}): {tail}")
    return done.stdout


def _add_file(tar: tarfile.TarFile, path: Path, name: str, mode: int) -> None:
    info = tar.gettarinfo(str(path), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = mode
    with path.open("rb") as data:
        tar.addfile(info, data)


def _add_bytes(tar: tarfile.TarFile, content: bytes, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    info.mode = mode
    tar.addfile(info, io.BytesIO(content))


def _add_tree(tar: tarfile.TarFile, root: Path, name: str) -> None:
    def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if info.name.endswith("/.complete") or "__pycache__" in info.name:
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    tar.add(str(root), arcname=name, filter=owned_by_root)
