"""Files: their storage (`storage.py`), text extraction, chunking, ingestion into vector stores
and the search over them. Below `services` and `tools`, above `engine` and `store` (DESIGN.md,
"Layout"). Kept free of imports here: the extraction child process imports this package and
should start fast."""
