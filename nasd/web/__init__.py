"""The REST API: Kubernetes-shaped paths over a root-only unix socket, or TCP with a bearer token."""
