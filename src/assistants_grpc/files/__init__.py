"""Files for the built-in tools: text extraction, chunking, ingestion into vector stores and the
search over them. Kept free of imports here: the extraction child process imports this package
and should start fast."""
