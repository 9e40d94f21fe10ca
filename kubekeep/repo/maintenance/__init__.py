"""Maintenance of a repository, one module per operation (restic's internal/repository/{check,prune,
repair_index}.go): check.py, prune.py, repair.py (repair-index) and recover.py (versioned locations).

What a set of snapshots needs, the walk they all build on, is public in ../reachability.py. Each
operation takes the narrow Protocol of what it uses (../protocols.py), never the Repository class.
"""

from .check import CheckResult, check
from .prune import PruneResult, prune
from .recover import RecoverResult, find_hidden, recover
from .repair import RepairResult, repair_index

__all__ = [
    "CheckResult",
    "PruneResult",
    "RecoverResult",
    "RepairResult",
    "check",
    "find_hidden",
    "prune",
    "recover",
    "repair_index",
]
