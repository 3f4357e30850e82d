"""The generated `assistants.v1` messages, imported from the client package where they live once."""

from assistants_grpc_client.v1 import *  # noqa: F403 (a re-export, names listed by __all__)
from assistants_grpc_client.v1 import __all__ as __all__
