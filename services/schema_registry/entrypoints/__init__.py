"""The registry's two APIs over the same use cases: gRPC (`grpc`) and Confluent REST (`rest`)."""
