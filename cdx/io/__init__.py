"""The bottom layer for run data: typed records, JSONL and atomic writes, run-directory readers.

Every task, the analysis and the app read and write run directories through this package.
"""

from cdx.io.jsonl import JsonlWriter, atomic_write_json, atomic_write_text, read_records

__all__ = ["JsonlWriter", "atomic_write_json", "atomic_write_text", "read_records"]
