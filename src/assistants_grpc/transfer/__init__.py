"""Import and export of Assistants objects in OpenAI's own JSON, ids kept (README "Import and
export"). `reading` streams dumps, `checking` turns each value into a checked proto object,
`staging` keeps them on disk until all are read, `writing` stores them in bounded transactions,
`exporting` writes a project back out; `kinds` has one module per type of object."""

from assistants_grpc.transfer.exporting import ExportResult, export
from assistants_grpc.transfer.importing import ImportOptions, import_files
from assistants_grpc.transfer.progress import Progress
from assistants_grpc.transfer.report import Problem, Summary

__all__ = [
    "ExportResult",
    "ImportOptions",
    "Problem",
    "Progress",
    "Summary",
    "export",
    "import_files",
]
