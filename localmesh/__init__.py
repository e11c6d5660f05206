"""The one-command local mesh: nats-server, every service, the gateway, demo data.

    with start_mesh(MeshOptions(data_dir=path, ports="free")) as mesh:      # blocking API
        ...
    async with launch(MeshOptions(data_dir=path, ports="free")) as mesh:   # asyncio API
        mesh.gateway_url, mesh.demo_api_key, mesh.grpc_targets["order"], ...

`crossdock run` and `make run` use the same code with fixed, documented ports.
"""

from localmesh.mesh import Mesh, launch, start_mesh
from localmesh.options import MeshOptions

__all__ = ["Mesh", "MeshOptions", "launch", "start_mesh"]
