"""Generated protobuf package (see protos/); do not edit."""
