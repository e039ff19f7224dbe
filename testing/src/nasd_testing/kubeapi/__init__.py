"""A small Kubernetes API server for tests: ``FakeKubeAPI``.

It speaks the real wire protocol on 127.0.0.1 - plain HTTP at ``url``, HTTPS
(self-signed) at ``tls_url`` for kubeconfigs - so that real
clients - kubectl, kubernetes-asyncio, a controller under test - can be
pointed at it with a kubeconfig (``write_kubeconfig``). It does what those
clients depend on, as the kube-apiserver does it: discovery, CRDs that
register resources with structural-schema defaulting, pruning and validation,
resourceVersions, generation, status subresources, finalizers, owner
references, selectors, watches with bookmarks and 410 Expired, Table output
for kubectl, and the apiserver's ``Status`` errors. Each module's docstring
says what the real server does in its area and where this one is simpler.

    api = FakeKubeAPI(token="t0ken", bookmark_interval=5.0, history=1000)
    url = await api.start()
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    ...
    await api.stop()

Modules: ``server`` (app, routes, the public class), ``store`` (objects,
resourceVersions, finalizers, garbage collection, event history), ``watch``
(watch streams), ``schema`` (CRD schemas), ``patch`` (merge and JSON patch),
``selectors``, ``tables`` (``kubectl get`` columns), ``discovery`` (discovery
and OpenAPI documents), ``resources`` (served resource types), ``status``
(errors), ``tls`` (the certificate of the HTTPS listener kubeconfigs name:
kubectl sends a bearer token only over HTTPS).
"""

from .server import FakeKubeAPI

__all__ = ["FakeKubeAPI"]
