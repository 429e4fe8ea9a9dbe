"""The MLMD side: reading ML Metadata's database (grows with issue #3)."""
