"""nasd's Kubernetes watcher: the custom resources of this node in, status, Events and finalizers out."""
