#!/usr/bin/env python3
"""Build a release of the attendant scheduler on the controller.

    python app/build_release.py --out .cache/releases [--version 2031.05.1] [--source DIR]

writes <out>/<version>/ with:

    wheelhouse/    every wheel app/requirements.txt needs on Debian 12 / CPython 3.11 / x86_64
    src/           the app's source (no caches, no virtualenvs, not this script)
    static/        collectstatic output (hashed names + staticfiles.json)
    requirements.txt
    release.json   version, git commit, source sha256, build time, wheels

The containers cannot download anything, so the wheelhouse is proven complete here:
a throwaway virtualenv is installed from it with --no-index, and that virtualenv runs
`manage.py check` and `collectstatic`. A release is written under a temporary name
and renamed into place at the end, so <out>/<version>/ is either complete or absent
(a directory left by something else without a valid release.json is replaced).

Running it again for the same version and the same source reuses the build and says
so: stdout is one line, starting with `reusing`, else `built`; progress goes to stderr.
The same version built from a different source is refused unless --force: one version
names one source.

Needs only the standard library and pip; runs with any Python 3.11 or newer. The proof
virtualenv needs a CPython 3.11 on Linux x86_64 (--python, default: this interpreter).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
RELEASE_FORMAT = 1
VERSION_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")

# The containers: Debian 12 (glibc 2.36), CPython 3.11, x86_64. A manylinux wheel for
# any glibc up to 2.36 runs there; manylinux2014 also admits manylinux2010/1 wheels.
TARGET_PYTHON = (3, 11)
TARGET_PLATFORM = "linux-x86_64"
TARGET_PLATFORM_TAGS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
    "manylinux2014_x86_64",
)

EXCLUDED_DIRS = frozenset({
    "__pycache__", ".venv", "venv", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".git",
    "node_modules", "staticfiles", "media", "htmlcov",
})
EXCLUDED_NAMES = frozenset({Path(__file__).name, ".DS_Store", ".coverage"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".sqlite3", ".sqlite3-journal", ".swp", "~")


class BuildError(Exception):
    """A build step failed; the message says which, what was expected and what was found."""


def default_version(source: Path = APP_DIR) -> str | None:
    """The content of <source>/VERSION, the version the app role deploys by default."""
    version_file = source / "VERSION"
    return version_file.read_text().strip() if version_file.is_file() else None


def release_version(text: str) -> str:
    if not VERSION_PATTERN.fullmatch(text):  # fullmatch: "$" alone would let a trailing newline in
        raise argparse.ArgumentTypeError(
            f"invalid version {text!r}: expected 1 to 64 characters, letters, digits, '.', '_' or '-',"
            f" starting with a letter or a digit (pattern {VERSION_PATTERN.pattern})"
        )
    return text


def log(message: str) -> None:
    print(f"build_release: {message}", file=sys.stderr, flush=True)


# --- the source tree -----------------------------------------------------------

def source_files(root: Path) -> list[Path]:
    """The files of a release's source, relative to `root`, in a stable order."""
    found = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            if name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES):
                continue
            path = Path(directory) / name
            if path.is_symlink() or not path.is_file():
                raise BuildError(f"{path}: expected a regular file in the source, found a link or device")
            found.append(path.relative_to(root))
    return found


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(root: Path) -> str:
    """One digest for names, executable bits and contents of every source file."""
    digest = hashlib.sha256()
    for relative in source_files(root):
        path = root / relative
        executable = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"{relative.as_posix()}\0{executable}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def copy_source(root: Path, destination: Path) -> None:
    for relative in source_files(root):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)


def git_state(root: Path) -> tuple[str | None, bool | None]:
    """(commit, whether the source differs from it), or (None, None) outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "."], capture_output=True, text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, bool(status.strip())


# --- running tools -------------------------------------------------------------

def run(argv: list[str], what: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a step; on failure raise BuildError with the step's name and the tail of its output."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    except OSError as exc:
        raise BuildError(f"cannot {what}: {argv[0]}: {exc.strerror}") from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        tail = "\n".join(output[-25:])
        raise BuildError(f"cannot {what} (exit {result.returncode}):\n{tail}")
    return result.stdout


def isolated_environment(**extra: str) -> dict[str, str]:
    """The caller's environment without pip and Django settings: nothing leaks into a proof."""
    environ = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("PIP_", "DJANGO_", "DB_", "PROMETHEUS_", "PYTHON", "VIRTUAL_ENV", "APP_"))
    }
    # No configuration file either: an index or find-links from there would hide a missing wheel.
    environ.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    environ.update(extra)
    return environ


def check_target_python(python: str) -> None:
    probe = (
        "import json, sys, sysconfig; print(json.dumps([sys.implementation.name, list(sys.version_info[:2]),"
        " sysconfig.get_platform()]))"
    )
    output = run([python, "-c", probe], f"run the proof interpreter {python}")
    implementation, version, platform = json.loads(output)
    if (implementation, tuple(version), platform) != ("cpython", TARGET_PYTHON, TARGET_PLATFORM):
        raise BuildError(
            f"the proof virtualenv needs CPython {'.'.join(map(str, TARGET_PYTHON))} on {TARGET_PLATFORM}"
            f" (the containers' python3); {python} is {implementation} {'.'.join(map(str, version))}"
            f" on {platform}: pass --python with such an interpreter"
        )


# --- build steps -----------------------------------------------------------------

def download_wheels(requirements: Path, wheelhouse: Path) -> list[Path]:
    wheelhouse.mkdir()
    platforms = [arg for tag in TARGET_PLATFORM_TAGS for arg in ("--platform", tag)]
    run(
        [
            sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--progress-bar", "off",
            "--only-binary=:all:", "--implementation", "cp",
            "--python-version", ".".join(map(str, TARGET_PYTHON)),
            "--abi", "cp{}{}".format(*TARGET_PYTHON), *platforms,
            "--dest", str(wheelhouse), "--requirement", str(requirements),
        ],
        "download the wheels of requirements.txt for CPython 3.11 manylinux x86_64"
        " (a package without such a wheel cannot be installed in the containers)",
    )
    files = sorted(wheelhouse.iterdir())
    strays = [path.name for path in files if path.suffix != ".whl"]
    if strays:
        raise BuildError(f"the wheelhouse must hold only wheels, found {', '.join(strays)}")
    return files


def prove_wheelhouse(python: str, release: Path, work: Path, version: str) -> None:
    """Install from the wheelhouse alone, then run Django from that virtualenv."""
    venv = work / "venv"
    run([python, "-m", "venv", str(venv)], f"create a virtualenv with {python} -m venv")
    venv_python = str(venv / "bin" / "python")
    offline = isolated_environment()
    run(
        [venv_python, "-m", "pip", "install", "--no-index", "--find-links", str(release / "wheelhouse"),
         "--requirement", str(release / "requirements.txt")],
        "install requirements.txt offline from the wheelhouse (is a wheel missing?)", env=offline,
    )
    run([venv_python, "-m", "pip", "check"], "verify the installed packages' dependencies", env=offline)
    django_env = isolated_environment(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_STATIC_ROOT=str(release / "static"),
        DJANGO_SQLITE_PATH=str(work / "build.sqlite3"),
        APP_VERSION=version,
        PYTHONDONTWRITEBYTECODE="1",  # src/ stays a plain copy of the source
    )
    manage = [venv_python, str(release / "src" / "manage.py")]
    run([*manage, "check"], "run `manage.py check` on the release", env=django_env)
    run([*manage, "collectstatic", "--noinput", "-v0"], "collect the static files", env=django_env)
    if not (release / "static" / "staticfiles.json").is_file():
        raise BuildError("collectstatic wrote no static/staticfiles.json: is ManifestStaticFilesStorage set?")


def write_manifest(release: Path, version: str, source_sha256: str, wheels: list[Path],
                   source: Path = APP_DIR) -> None:
    commit, dirty = git_state(source)
    manifest = {
        "format": RELEASE_FORMAT,
        "version": version,
        "git_commit": commit,
        "git_dirty": dirty,
        "source_sha256": source_sha256,
        "requirements_sha256": file_sha256(release / "requirements.txt"),
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "target": {
            "python": "cp{}{}".format(*TARGET_PYTHON),
            "platform": "manylinux x86_64, glibc <= 2.36 (Debian 12)",
        },
        "wheels": [{"file": wheel.name, "sha256": file_sha256(wheel)} for wheel in wheels],
    }
    (release / "release.json").write_text(json.dumps(manifest, indent=2) + "\n")


def build(release: Path, version: str, source_sha256: str, python: str,
          source: Path = APP_DIR) -> dict[str, object]:
    requirements = source / "requirements.txt"
    if not requirements.is_file():
        raise BuildError(f"{requirements}: expected the app's pinned requirements, found no file")
    check_target_python(python)
    copy_source(source, release / "src")
    if tree_sha256(release / "src") != source_sha256:
        raise BuildError(f"the source in {source} changed while it was copied: build again")
    shutil.copy2(requirements, release / "requirements.txt")
    log("downloading wheels")
    wheels = download_wheels(release / "requirements.txt", release / "wheelhouse")
    log(f"proving the wheelhouse ({len(wheels)} wheels) offline with {python}")
    with tempfile.TemporaryDirectory(prefix="scheduler-release-") as work:
        prove_wheelhouse(python, release, Path(work), version)
    write_manifest(release, version, source_sha256, wheels, source)
    return json.loads((release / "release.json").read_text())


# --- an existing release ---------------------------------------------------------

def inspect_release(release: Path, version: str) -> tuple[dict[str, object] | None, str]:
    """(manifest, "") for a complete release, else (None, what is wrong with it)."""
    try:
        manifest = json.loads((release / "release.json").read_text())
    except FileNotFoundError:
        return None, "no release.json"
    except (OSError, ValueError) as exc:
        return None, f"unreadable release.json ({exc})"
    if manifest.get("format") != RELEASE_FORMAT or manifest.get("version") != version:
        found = f"format {manifest.get('format')}, version {manifest.get('version')!r}"
        return None, f"release.json is for {found}"
    for wheel in manifest.get("wheels", []):
        path = release / "wheelhouse" / wheel["file"]
        if not path.is_file() or file_sha256(path) != wheel["sha256"]:
            return None, f"wheel {wheel['file']} missing or altered"
    if not (release / "static" / "staticfiles.json").is_file():
        return None, "no static/staticfiles.json"
    if not (release / "src").is_dir() or tree_sha256(release / "src") != manifest.get("source_sha256"):
        return None, "src/ does not match release.json"
    return manifest, ""


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """One build per version at a time; a second one waits, then finds the first's result."""
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_release(version: str, out: Path, python: str, force: bool,
                  source: Path = APP_DIR) -> tuple[str, Path, dict[str, object]]:
    """Build (or reuse) <out>/<version> from `source`; return ("built" or "reusing", path, manifest)."""
    if not (source / "manage.py").is_file():
        raise BuildError(f"--source {source}: expected a Django project (manage.py), found none")
    if out == source or source in out.parents:
        raise BuildError(f"--out {out} is inside the source {source}: choose a directory outside it")
    source_sha256 = tree_sha256(source)
    out.mkdir(parents=True, exist_ok=True)
    release = out / version
    with exclusive(out / f".{version}.lock"):
        if release.exists():
            manifest, problem = inspect_release(release, version)
            if manifest is not None and manifest["source_sha256"] == source_sha256:
                return "reusing", release, manifest
            if manifest is not None and not force:
                raise BuildError(
                    f"release {version} in {release} was built from another source"
                    f" (sha256 {manifest['source_sha256']}, now {source_sha256}): one version names one"
                    " source, so choose a new version, or pass --force to replace it"
                )
            log(f"replacing {release}: {problem or 'built from another source (--force)'}")
        for stale in out.glob(f".{version}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = out / f".{version}.partial-{os.getpid()}"
        staging.mkdir()
        try:
            manifest = build(staging, version, source_sha256, python, source)
            if release.exists():
                retired = out / f".{version}.partial-{os.getpid()}-old"
                release.rename(retired)
                shutil.rmtree(retired)
            staging.rename(release)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return "built", release, manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--version", type=release_version,
        help="release name, e.g. 2031.05.1 (default: the content of app/VERSION)",
    )
    parser.add_argument(
        "--source", type=Path, default=APP_DIR,
        help="the Django project to release (default: this script's directory, the reference app)",
    )
    parser.add_argument("--out", required=True, type=Path, help="directory that holds one folder per release")
    parser.add_argument(
        "--python", default=sys.executable,
        help="CPython 3.11 (Linux x86_64) for the proof virtualenv (default: this interpreter)",
    )
    parser.add_argument("--force", action="store_true", help="replace a release of this version built from"
                        " another source")
    args = parser.parse_args(argv)
    if args.version is None:
        shipped = default_version(args.source.resolve())
        if shipped is None:
            parser.error(f"--version is required when {args.source / 'VERSION'} does not exist")
        try:
            args.version = release_version(shipped)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"{args.source / 'VERSION'}: {exc}")
    try:
        state, release, manifest = build_release(args.version, args.out.resolve(), args.python, args.force,
                                                 args.source.resolve())
    except BuildError as exc:
        print(f"build_release: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{state} release {args.version} at {release}"
        f" (source sha256 {manifest['source_sha256']}, {len(manifest['wheels'])} wheels,"
        f" built {manifest['built_at']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
