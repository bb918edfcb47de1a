#!/usr/bin/python3
"""Builds rogatoryctl as one file that runs outside a checkout: a Python zipapp.

    tools/rogatoryctl/build_zipapp.py OUT.pyz

The zipapp holds cli.py, ops.py, rogatory_client.py and the gRPC stubs generated now from
this checkout's protos, so where it runs it needs only Debian's /usr/bin/python3 with
python3-grpcio and python3-protobuf (python3-yaml for YAML files): no protoc, no checkout.
`rogatoryctl.pyz --version` names the version and the commit it was built from. Install:
`install -m 755 OUT.pyz /usr/local/bin/rogatoryctl`. The development key set is not
inside: `--as` needs `--dev-key-file` (tokens otherwise come from --token or --token-file).
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipapp

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pyclient"))
import rogatory_client as rc  # noqa: E402

MODULES = [HERE / "cli.py", HERE / "ops.py", HERE.parent / "pyclient" / "rogatory_client.py"]

MAIN = '''\
import os
import sys

import rogatory_client

rogatory_client.use_bundled_stubs(os.path.join(os.path.dirname(__file__), "stubs"))
import cli  # noqa: E402

sys.exit(cli.main(sys.argv[1:]))
'''

# Top-level packages the stubs share with installed ones (grpc: the real gRPC package, whose
# search path rogatory_client extends; google: protobuf's namespace): no __init__.py there,
# or the stubs would hide them.
SHARED_TOP_LEVEL = {"grpc", "google"}


def describe() -> str:
    version = re.search(r"project\(\s*rogatory\s+VERSION\s+([0-9.]+)",
                        (rc.REPO_ROOT / "CMakeLists.txt").read_text())
    commit = subprocess.run(["git", "-C", str(rc.REPO_ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True, check=False).stdout.strip()
    return f"{version.group(1) if version else 'unknown'} (zipapp, commit {commit or 'unknown'})"


def build(out: pathlib.Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        staging = pathlib.Path(tmp) / "rogatoryctl"
        stubs = staging / "stubs"
        rc.generate_stubs(stubs)
        for leftover in (".lock", ".rogatory-proto-hash"):
            (stubs / leftover).unlink(missing_ok=True)
        # zipimport finds modules in regular packages only: give every generated package
        # its __init__.py, except the top-level ones shared with installed packages.
        for directory in sorted(p for p in stubs.rglob("*") if p.is_dir()):
            top = directory.relative_to(stubs).parts[0]
            if directory.parent == stubs and top in SHARED_TOP_LEVEL:
                continue
            (directory / "__init__.py").touch()
        for module in MODULES:
            shutil.copy(module, staging / module.name)
        (staging / "_build_info.py").write_text(f"DESCRIPTION = {describe()!r}\n")
        (staging / "__main__.py").write_text(MAIN)
        zipapp.create_archive(staging, out, interpreter="/usr/bin/python3", compressed=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = pathlib.Path(argv[0])
    build(out)
    out.chmod(0o755)
    print(f"{out}: rogatoryctl {describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
