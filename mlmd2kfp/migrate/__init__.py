"""Reading, writing, checkpoints and the lock of a migration (issue #4)."""
