"""`python -m compressor_svc` / `compressor-svc`: the compressor process (COMPRESSOR_*, JANITOR_ADDR, S3_*)."""

from compressor_svc.config import CompressorSettings
from compressor_svc.server import CompressorServer
from mesh.config import S3Settings
from mesh.server import service_main

main = service_main("compressor", CompressorServer, CompressorSettings, S3Settings)

if __name__ == "__main__":
    main()
