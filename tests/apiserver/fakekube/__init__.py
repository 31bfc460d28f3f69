"""fakekube: an in-memory Kubernetes API server for tests (see tests/apiserver/README.md)."""
