"""Files: their storage (`storage.py`); text extraction, chunking and vector-store search live
beside it. Below `services` and `tools`, above `engine` and `store` (DESIGN.md, "Layout")."""
