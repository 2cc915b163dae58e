"""vidaio-mesh shared runtime: generated contracts (mesh.v1) and the small layer every service uses."""
