"""Transport: one servicer per gRPC service. Convert, call a service, convert back; no rules."""
