"""`python -m assistants_grpc serve` is `assistants-grpc serve`."""

from assistants_grpc.cli import main

raise SystemExit(main())
