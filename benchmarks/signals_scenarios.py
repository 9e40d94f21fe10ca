"""Deterministic volumes with daily benign churn, planted attacks, and a core-level backup pipeline.

Used by the signals tests (tests/integration/test_signals_planted.py) and the detection benchmark.
Everything is generated from fixed seeds: the same day of the same volume always holds the same bytes.

The volume (about 10 MiB, ~700 files) looks like an application's data volume:

- ``db/base/*.dat``        database files of 8 KiB pages (row text, partly compressible)
- ``logs/access.log``      appended every day; ``logs/app-<day>.log`` one per day, kept 14 days (rotation)
- ``uploads/<month>/*``    user uploads, a few a day: photos (random bytes), documents (text)
- ``app/releases/v<n>/*``  a release every 25 days adds ~40 files and drops the release before the last
- ``config/*.yaml``        rarely changed

Benign churn per day: log appends and one new daily log, 5-40 database pages rewritten in place,
0-6 uploads (an upload deleted now and then), rotation deleting the log of 14 days ago, release days.
Attacks (each on a copy of a benign day): in-place encryption of a share of the files, mass deletion,
mass renaming to ``.locked`` with a ransom note in every directory.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubekeep.backup.volumes import export_directory
from kubekeep.catalog import Catalog
from kubekeep.repo.repository import Repository
from kubekeep.restorepoint import (
    MANIFESTS_STREAM,
    MANIFESTS_TAG,
    RestorePointRecord,
    catalog_rows,
    manifest_stream,
    write_restore_point,
)
from kubekeep.signals import CatalogHistory, PointSignals, SignalPolicy, compute_signals, record_signals
from kubekeep.signals.points import point_ref

KiB = 1024
PAGE = 8 * KiB
START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
RANSOM_NOTE = b"""YOUR FILES HAVE BEEN ENCRYPTED
All your documents, databases and backups are locked with a strong key.
To get them back, send 2 BTC to the address below and mail the transaction id.
Do not try to recover the files yourself: you will lose them forever.
"""

_WORDS = (
    "order", "customer", "payment", "shipped", "pending", "refund", "invoice", "warehouse", "berlin", "paris",
    "tokyo", "premium", "standard", "express", "cancelled", "delivered", "cart", "coupon", "tax", "currency",
    "node", "pod", "namespace", "volume", "claim", "alpha", "beta",
)


def _text(rng: random.Random, size: int) -> bytes:
    out: list[str] = []
    n = 0
    while n < size:
        line = json.dumps({"id": rng.randrange(10**9), "status": rng.choice(_WORDS), "city": rng.choice(_WORDS),
                           "amount": round(rng.random() * 1000, 2),
                           "note": " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(2, 10)))})
        out.append(line)
        n += len(line) + 1
    return ("\n".join(out) + "\n").encode()[:size]


def _page(rng: random.Random) -> bytes:
    # a page of row text with a small binary header: compresses, but not like plain text
    return rng.randbytes(256) + _text(rng, PAGE - 256)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


class AppVolume:
    """One application volume under ``root``, changed day by day."""

    DB_FILES = 8
    DB_PAGES = 64  # 512 KiB per database file
    KEEP_LOGS = 14
    RELEASE_EVERY = 25

    def __init__(self, root: Path, seed: int = 1) -> None:
        self.root = root
        self.seed = seed

    def rng(self, day: int, salt: str = "") -> random.Random:
        return random.Random(f"{self.seed}/{day}/{salt}")

    def create(self) -> None:
        """Day 0: the volume as first backed up."""
        rng = self.rng(0, "create")
        for i in range(self.DB_FILES):
            _write(self.root / "db" / "base" / f"{16384 + i}.dat", b"".join(_page(rng) for _ in range(self.DB_PAGES)))
        _write(self.root / "logs" / "access.log", _text(rng, 64 * KiB))
        for i in range(30):
            _write(self.root / "config" / f"service-{i:02d}.yaml",
                   f"name: service-{i}\nreplicas: {rng.randrange(1, 5)}\nimage: shop/svc:{i}\n".encode() * 20)
        for month in range(1, 7):
            for i in range(60):
                self._upload(rng, self.root / "uploads" / f"2025-{month:02d}", i)
        self._release(0)

    def _upload(self, rng: random.Random, directory: Path, i: int) -> None:
        if rng.random() < 0.6:
            _write(directory / f"photo-{i:04d}.jpg", rng.randbytes(rng.randrange(4, 24) * KiB))
        else:
            _write(directory / f"doc-{i:04d}.txt", _text(rng, rng.randrange(2, 16) * KiB))

    def _release(self, n: int) -> None:
        rng = self.rng(n, "release")
        base = self.root / "app" / "releases" / f"v{n}"
        for i in range(12):
            _write(base / "static" / f"chunk-{i}.js", _text(rng, rng.randrange(4, 20) * KiB))
            _write(base / "static" / f"style-{i}.css", _text(rng, rng.randrange(1, 6) * KiB))
            _write(base / "static" / f"icon-{i}.png", rng.randbytes(rng.randrange(1, 8) * KiB))
        for i in range(4):
            _write(base / f"page-{i}.html", _text(rng, 3 * KiB))
        old = self.root / "app" / "releases" / f"v{n - 2}"
        if old.exists():
            for path in sorted(old.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            old.rmdir()

    def benign_day(self, day: int) -> None:
        """The changes of ``day`` (>= 1): what a healthy application does in a day."""
        rng = self.rng(day)
        with open(self.root / "logs" / "access.log", "ab") as fh:
            fh.write(_text(rng, rng.randrange(20, 120) * KiB))
        _write(self.root / "logs" / f"app-{day:04d}.log", _text(rng, rng.randrange(30, 150) * KiB))
        (self.root / "logs" / f"app-{day - self.KEEP_LOGS:04d}.log").unlink(missing_ok=True)
        db = sorted((self.root / "db" / "base").glob("*.dat"))
        for path in rng.sample(db, min(len(db), rng.randrange(1, 4))):  # fewer after an attack
            with open(path, "r+b") as fh:
                for _ in range(rng.randrange(5, 15)):
                    fh.seek(rng.randrange(self.DB_PAGES) * PAGE)
                    fh.write(_page(rng))
        month = self.root / "uploads" / f"2026-{(day // 30) + 1:02d}"
        for i in range(rng.randrange(0, 7)):
            self._upload(rng, month, day * 10 + i)
        if rng.random() < 0.15:
            uploads = _files(self.root / "uploads")
            if uploads:
                rng.choice(uploads).unlink()
        configs = _files(self.root / "config")
        if rng.random() < 0.05 and configs:
            cfg = rng.choice(configs)
            cfg.write_bytes(cfg.read_bytes() + f"# changed on day {day}\n".encode())
        if day % self.RELEASE_EVERY == 0:
            self._release(day // self.RELEASE_EVERY)

    # -- attacks ------------------------------------------------------------------------------

    def encrypt(self, share: float = 0.3, seed: int = 11) -> int:
        """Overwrite ``share`` of the files in place with random bytes of the same size (encryption)."""
        rng = random.Random(seed)
        files = _files(self.root)
        victims = rng.sample(files, round(len(files) * share))
        for path in victims:
            size = path.stat().st_size
            with open(path, "r+b") as fh:
                fh.write(rng.randbytes(size))
        return len(victims)

    def delete(self, share: float = 0.6, seed: int = 12) -> int:
        rng = random.Random(seed)
        files = _files(self.root)
        victims = rng.sample(files, round(len(files) * share))
        for path in victims:
            path.unlink()
        return len(victims)

    def rename_locked(self, note: bytes = RANSOM_NOTE) -> int:
        """Rename every file to ``<name>.locked`` and drop the same ransom note into every directory."""
        files = _files(self.root)
        for path in files:
            path.rename(path.with_name(path.name + ".locked"))
        directories = [self.root, *sorted(p for p in self.root.rglob("*") if p.is_dir())]
        for directory in directories:
            (directory / "HOW-TO-RECOVER-FILES.txt").write_bytes(note)
        return len(files)


@dataclass
class CorePipeline:
    """A backup run at core level (no Prefect, no cluster): volume -> manifests -> restore point ->
    catalog rows -> signals, in the backup flow's order."""

    repo: Repository
    catalog: Catalog
    app: str = "shop"
    namespace: str = "shop"
    pvc: str = "data"
    policy: SignalPolicy = SignalPolicy()
    start: datetime = START

    def backup(self, day: int, volume: Path | None, objects: Iterable[Mapping[str, Any]] = (),
               *, compact_every: int = 25, type_errors: list[str] | None = None) -> PointSignals:
        rp_id = f"{self.app}-d{day:04d}"
        finished = self.start + timedelta(days=day)
        volumes = []
        if volume is not None:
            volumes.append(export_directory(self.repo, volume, namespace=self.namespace, pvc=self.pvc,
                                            storage_class="standard", size_bytes=1 << 30, restore_point_id=rp_id))
        objects = list(objects)
        manifests = self.repo.backup(streams={MANIFESTS_STREAM: manifest_stream(dict(o) for o in objects)},
                                     tags=[MANIFESTS_TAG, f"app:{self.app}"],
                                     metadata={"restore_point": rp_id, "app": self.app, "cluster": "test"})
        record = RestorePointRecord(
            id=rp_id, app=self.app, cluster="test", namespaces=[self.namespace],
            started_at=(finished - timedelta(minutes=5)).isoformat(), finished_at=finished.isoformat(),
            status="succeeded", location=self.repo.storage.url, manifest_snapshot=manifests.snapshot_id,
            object_count=len(objects), volumes=volumes, type_errors=list(type_errors or ()))
        sid = write_restore_point(self.repo, record)
        point, object_rows, volume_rows = catalog_rows(self.repo, record, sid)
        self.catalog.add_restore_point(point, object_rows, volume_rows)
        signals = compute_signals(self.repo, CatalogHistory(self.catalog), point_ref(record), self.policy)
        record_signals(self.repo, self.catalog, signals)
        if compact_every and day and day % compact_every == 0:
            self.catalog.compact()
        return signals
