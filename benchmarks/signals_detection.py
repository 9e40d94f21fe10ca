"""Detection rates and false positives of the signals, at core level (repository on the filesystem).

    python benchmarks/signals_detection.py --work /tmp/kk-detect [--seeds 3] [--days 100] [--attack-days 20,50,80]

For each seed: a benign series of ``--days`` points (benchmarks/signals_scenarios.py: log appends and
rotation, database pages rewritten, uploads, releases) with the app's manifests (Secrets rotated now
and then, pods replaced every day); every suspect point of the series is a false positive. At each
attack day the repository, catalog and volume are copied and every attack is planted on the copy:
its point must be suspect. Prints a table; ``--json FILE`` writes the numbers; ``--markdown FILE``
writes the table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.signals_scenarios import AppVolume, CorePipeline  # noqa: E402
from kubekeep.catalog import Catalog  # noqa: E402
from kubekeep.repo.crypto import KdfParams  # noqa: E402
from kubekeep.repo.repository import Repository  # noqa: E402
from kubekeep.repo.storage import FilesystemStorage  # noqa: E402
from kubekeep.signals import SignalPolicy  # noqa: E402

PASSWORD = "detect"


class AppObjects:
    """The app's Kubernetes objects, day by day: Secrets rotated now and then, pods replaced daily."""

    def __init__(self, namespace: str, seed: int) -> None:
        self.namespace = namespace
        self.seed = seed
        self.secrets = [f"api-key-{i}" for i in range(12)]
        self.configmaps = [f"settings-{i}" for i in range(8)]
        self.deleted_secrets: set[str] = set()

    def day(self, day: int) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}/objects/{day}")
        if day and rng.random() < 0.1:  # rotation: a secret replaced under a new name
            old = rng.choice(self.secrets)
            self.secrets[self.secrets.index(old)] = f"{old.split('-v')[0]}-v{day}"
        md = {"namespace": self.namespace}
        objs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Secret", "metadata": {**md, "name": n}}
                                      for n in self.secrets if n not in self.deleted_secrets]
        objs += [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {**md, "name": n}} for n in self.configmaps]
        objs += [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {**md, "name": n}} for n in ("web", "api")]
        objs += [{"apiVersion": "v1", "kind": "Pod", "metadata": {**md, "name": f"web-{day}-{i}"}} for i in range(4)]
        return objs

    def delete_secrets(self, share: float) -> int:
        victims = self.secrets[: round(len(self.secrets) * share)]
        self.deleted_secrets.update(victims)
        return len(victims)


ATTACKS: dict[str, Callable[[AppVolume, AppObjects], int]] = {
    "encrypt 30 % in place": lambda v, o: v.encrypt(0.30),
    "encrypt 10 % in place": lambda v, o: v.encrypt(0.10),
    "delete 60 %": lambda v, o: v.delete(0.60),
    "delete 20 %": lambda v, o: v.delete(0.20),
    "rename to .locked + ransom notes": lambda v, o: v.rename_locked(),
    "delete 90 % of the Secrets": lambda v, o: o.delete_secrets(0.9),
}


def _open(root: Path) -> CorePipeline:
    repo = Repository.open(FilesystemStorage(root / "repo"), passphrase=PASSWORD)
    catalog = Catalog(repo.storage, cache_dir=root / "cache", codec=repo.catalog_codec())
    return CorePipeline(repo, catalog)


def run_seed(work: Path, seed: int, days: int, attack_days: list[int], policy: SignalPolicy
             ) -> dict[str, Any]:
    root = work / f"seed-{seed}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    repo = Repository.init(FilesystemStorage(root / "repo", create=True), passphrase=PASSWORD, kdf=KdfParams.cheap())
    repo.close()
    pipeline = replace(_open(root), policy=policy)
    volume = AppVolume(root / "volume", seed=seed)
    volume.create()
    objects = AppObjects("shop", seed)
    series: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for day in range(days + 1):
        if day:
            volume.benign_day(day)
        signals = pipeline.backup(day, volume.root, objects.day(day), compact_every=10)
        series.append({"day": day, "score": signals.score, "suspect": signals.suspect, "reasons": signals.reasons})
        if day not in attack_days:
            continue
        for name, plant in ATTACKS.items():
            fork = work / f"fork-{seed}-{day}"
            shutil.rmtree(fork, ignore_errors=True)
            shutil.copytree(root, fork, symlinks=True)
            forked = replace(_open(fork), policy=policy)
            forked_volume = AppVolume(fork / "volume", seed=seed)
            forked_objects = AppObjects("shop", seed)
            forked_objects.secrets = list(objects.secrets)
            plant(forked_volume, forked_objects)
            attacked = forked.backup(day + 1, forked_volume.root, forked_objects.day(day + 1), compact_every=0)
            detections.append({"attack": name, "day": day + 1, "score": attacked.score,
                               "detected": attacked.suspect, "reason": (attacked.reasons or [""])[0]})
            forked.repo.close()
            shutil.rmtree(fork)
    pipeline.repo.close()
    judged = series[1:]  # the first point is the full backup: nothing to compare with
    return {"seed": seed, "points": len(judged), "false_positives": [s for s in judged if s["suspect"]],
            "max_benign_score": max(s["score"] for s in judged), "detections": detections}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--days", type=int, default=100)
    ap.add_argument("--attack-days", default="20,50,80")
    ap.add_argument("--threshold", type=float, default=SignalPolicy().threshold)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kk-detect-"))
    policy = SignalPolicy(threshold=args.threshold)
    attack_days = [int(d) for d in args.attack_days.split(",") if d]
    started = time.perf_counter()
    results = [run_seed(work, seed, args.days, attack_days, policy) for seed in range(1, args.seeds + 1)]
    elapsed = time.perf_counter() - started
    lines = ["| attack | detected | lowest score | example reason |", "|---|---|---|---|"]
    for name in ATTACKS:
        runs = [d for r in results for d in r["detections"] if d["attack"] == name]
        hits = sum(d["detected"] for d in runs)
        lowest = min(runs, key=lambda d: d["score"]) if runs else None
        reason = lowest["reason"].replace("|", "/") if lowest else ""
        lines.append(f"| {name} | {hits}/{len(runs)} | {lowest['score'] if lowest else 0:.1f} | {reason} |")
    points = sum(r["points"] for r in results)
    fps = [fp | {"seed": r["seed"]} for r in results for fp in r["false_positives"]]
    lines += ["", f"Benign series: {len(fps)} false positive(s) in {points} points "
                  f"({len(fps) / points * 100:.1f} %; {len(results)} seed(s) x {args.days} days); highest benign "
                  f"score {max(r['max_benign_score'] for r in results):.2f} (threshold {policy.threshold:g})."]
    for fp in fps:
        lines.append(f"- false positive: seed {fp['seed']} day {fp['day']} score {fp['score']:.1f}: "
                     f"{(fp['reasons'] or [''])[0]}")
    text = "\n".join(lines)
    print(text)
    print(f"({elapsed:.0f} s)")
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({"threshold": policy.threshold, "days": args.days,
                                         "attack_days": attack_days, "results": results}, indent=1))


if __name__ == "__main__":
    main()
