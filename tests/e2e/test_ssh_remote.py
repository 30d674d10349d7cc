"""A DVC remote on a real server: Debian's sshd on 127.0.0.1, a throw-away key, credentials only in config.local."""

import getpass
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from workspace import (
    ALL_OUTS, assert_pull_brings_every_output_and_repro_runs_nothing, commit, dvc, environment, git, read_outs,
)

SSHD = Path("/usr/sbin/sshd")
PRIVILEGE_SEPARATION = Path("/run/sshd")  # sshd refuses to start without it

pytestmark = pytest.mark.skipif(not SSHD.exists(), reason=f"{SSHD} missing: apt-get install openssh-server")


class Sshd:
    """sshd -D on a free port of 127.0.0.1, accepting only the test's key; stop() also ends open sessions."""

    def __init__(self, folder: Path):
        self.port = _free_port()
        self.config = folder / "sshd_config"
        self.config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {folder / 'host_key'}\n"
            f"AuthorizedKeysFile {folder / 'authorized_keys'}\n"
            f"PidFile {folder / 'sshd.pid'}\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\n"
            "StrictModes no\n"  # tmp_path's modes are the test runner's, not a home directory's
            "UsePAM no\n"
            "Subsystem sftp internal-sftp\n"
        )
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen([str(SSHD), "-D", "-f", str(self.config), "-e"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"sshd exited {self.process.returncode}: {self.process.stderr.read().decode()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"sshd did not listen on 127.0.0.1:{self.port} within 10 s")

    def stop(self) -> None:
        """Kill sshd and the session processes it forked (they outlive it, each in its own session)."""
        if self.process is None or self.process.poll() is not None:
            return
        sessions = psutil.Process(self.process.pid).children(recursive=True)
        self.process.kill()
        self.process.wait()
        for session in sessions:
            try:
                session.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(sessions, timeout=5)
        self.process.stderr.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    if not PRIVILEGE_SEPARATION.is_dir():
        if os.geteuid() != 0:
            pytest.skip(f"{PRIVILEGE_SEPARATION} missing, and only root may create it")
        PRIVILEGE_SEPARATION.mkdir(mode=0o755)
    folder = tmp_path / "sshd"
    folder.mkdir()
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    server = Sshd(folder)
    server.start()
    yield server
    server.stop()


def add_ssh_remote(project: Path, sshd: Sshd, storage: Path) -> None:
    """The URL goes into .dvc/config (committed); the key only into .dvc/config.local (git-ignored)."""
    dvc(project, "remote", "add", "--default", "storage", f"ssh://{getpass.getuser()}@127.0.0.1:{sshd.port}{storage}")
    use_key(project, sshd)
    commit(project, "an SSH DVC remote")


def use_key(project: Path, sshd: Sshd) -> None:
    dvc(project, "remote", "modify", "--local", "storage", "keyfile", str(sshd.config.parent / "client_key"))


def clone(source: Path, destination: Path, sshd: Sshd) -> Path:
    git(destination.parent, "clone", "--quiet", str(source), str(destination))
    use_key(destination, sshd)
    return destination


def test_credentials_stay_in_config_local_which_git_ignores(reproduced, tmp_path, sshd):
    add_ssh_remote(reproduced, sshd, tmp_path / "storage")
    assert "keyfile" in (reproduced / ".dvc/config.local").read_text()
    assert "keyfile" not in (reproduced / ".dvc/config").read_text()
    assert "ssh://" in (reproduced / ".dvc/config").read_text()
    assert git(reproduced, "status", "--porcelain", "--ignored=no") == ""  # config.local neither listed nor added
    assert git(reproduced, "ls-files", ".dvc").split() == [".dvc/.gitignore", ".dvc/config",
                                                              ".dvc/plots/coefficients.json",
                                                              ".dvc/plots/linear_log_y.json"]


def test_after_dvc_pull_over_ssh_in_another_clone_dvc_repro_runs_nothing(reproduced, tmp_path, sshd):
    add_ssh_remote(reproduced, sshd, tmp_path / "storage")
    pushed = dvc(reproduced, "push").stdout
    assert f"{len(ALL_OUTS)} files pushed" in pushed, pushed

    other = clone(reproduced, tmp_path / "other", sshd)
    assert_pull_brings_every_output_and_repro_runs_nothing(reproduced, other)


def test_a_push_cut_off_by_the_server_completes_on_the_next_push(reproduced, tmp_path, sshd):
    # Many small files pushed one at a time (-j 1): the push takes seconds, so it is cut off halfway.
    shards = reproduced / "shards"
    shards.mkdir()
    for index in range(400):
        (shards / f"{index:03}.bin").write_bytes(os.urandom(4096))
    dvc(reproduced, "add", "shards")
    storage = tmp_path / "storage"
    add_ssh_remote(reproduced, sshd, storage)
    total = len(ALL_OUTS) + 400 + 1  # the outputs, the shards and the directory's manifest

    push = subprocess.Popen([sys.executable, "-m", "dvc", "push", "-j", "1"], cwd=reproduced, env=environment(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while _landed(storage) < 20 and push.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert push.poll() is None, f"the push ended before it could be cut off:\n{push.communicate()[0]}"
    sshd.stop()
    first, _ = push.communicate(timeout=60)
    assert push.returncode != 0, first
    landed = _landed(storage)
    assert 20 <= landed < total, first
    assert _damaged(storage) == [], "a file under its final name in the remote is incomplete"

    sshd.start()
    second = dvc(reproduced, "push").stdout
    assert f"{total - landed} files pushed" in second, second

    other = clone(reproduced, tmp_path / "other", sshd)
    dvc(other, "pull")
    assert read_outs(other) == read_outs(reproduced)
    assert {path.name: path.read_bytes() for path in (other / "shards").iterdir()} == \
        {path.name: path.read_bytes() for path in shards.iterdir()}
    status = dvc(other, "status", "--cloud").stdout
    assert "Cache and remote 'storage' are in sync." in status, status


def _final(storage: Path) -> list[Path]:
    """Files that reached their final name in the remote: DVC uploads each as `<name>.<token>.tmp`, then renames it."""
    return [path for path in (storage / "files" / "md5").glob("*/*") if not path.name.endswith(".tmp")]


def _landed(storage: Path) -> int:
    return len(_final(storage))


def _damaged(storage: Path) -> list[str]:
    """Files in the remote whose bytes do not hash to their name (`ab/cdef…` holds bytes whose md5 is abcdef…)."""
    names = {path: path.parent.name + path.name.removesuffix(".dir") for path in _final(storage)}
    return [name for path, name in names.items() if hashlib.md5(path.read_bytes()).hexdigest() != name]
