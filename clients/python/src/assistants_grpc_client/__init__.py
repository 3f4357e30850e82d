"""Python client of assistants-grpc: the generated `assistants.v1` messages and stubs.

The generated modules are under `assistants_grpc_client.v1`.
"""

__all__: list[str] = []
