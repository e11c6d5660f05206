"""gRPC side of carrier-adapter. The servicer (wired by main) lives here; `proto_mapping`
translates between the protobuf contracts and the domain dataclasses."""
