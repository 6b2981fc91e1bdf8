"""Results store (SQLite, one row per run) and the sweep runner that fills it, resumably.

See docs/store.md. Main names: ``RunRecord``, ``run_key``, ``ResultStore`` (db.py), ``Task``,
``run_tasks`` (runner.py).
"""

from .db import ResultStore, RunRecord, canonical_json, run_key, seed_records
from .executors import Task
from .runner import TaskFailed, pending_tasks, run_tasks

__all__ = ["ResultStore", "RunRecord", "Task", "TaskFailed", "canonical_json", "pending_tasks", "run_key",
           "run_tasks", "seed_records"]
