"""Independent parity checks between MLMD and the migrated KFP tables (issue #5)."""
