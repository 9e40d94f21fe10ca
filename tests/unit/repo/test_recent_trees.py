"""RecentTrees: bounded by bytes, the oldest go first, and a tree a newer backup touched again counts as new."""

from __future__ import annotations

from kubekeep.repo.recent import RecentTrees


def test_the_oldest_go_first_within_the_byte_limit() -> None:
    recent = RecentTrees(limit=30)
    for n in range(4):
        recent.add(bytes([n]), b"x" * 10)
    assert recent.get(b"\0") is None and recent.get(b"\1") == b"x" * 10 and recent.size == 30
    recent.add(b"big", b"y" * 31)  # larger than the whole limit: not kept, nothing pushed out
    assert recent.get(b"big") is None and recent.get(b"\1") is not None


def test_a_tree_added_again_is_the_newest() -> None:
    """A volume changed and changed back: the next backup's trees are the ones of two backups ago. They must
    stay, or the diff after it reads them all from storage (seen: 50 -> 200 ms per point after 4 points)."""
    recent = RecentTrees(limit=30)
    for n in range(3):
        recent.add(bytes([n]), b"x" * 10)
    recent.add(b"\0", b"x" * 10)  # the oldest, touched again by the newest backup
    recent.add(b"\3", b"x" * 10)
    assert recent.get(b"\0") is not None
    assert recent.get(b"\1") is None
