# The pinned connectrpc/conformance release: the runner (connectconformance)
# and the protos the server under test is generated from come from it.
CONFORMANCE_VERSION=v1.0.7
