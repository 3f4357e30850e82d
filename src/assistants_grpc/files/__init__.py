"""Files: their storage (`storage.py`), text extraction, chunking, ingestion into vector stores
and the search over them. Below `services` and `tools`, above `engine` and `store` (DESIGN.md,
"Layout"). Kept free of imports here: the extraction child process imports this package and
should start fast."""

import os

# numpy's BLAS (OpenBLAS) would start a thread per core for each vector scan: on the event loop
# of a server that shares its cores, they spin against each other and against the loop (a scan
# of 100,000 x 256 floats took 2-3x longer with two threads than with one). Set before numpy is
# first imported (only files/ imports it); the environment can still say otherwise.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
