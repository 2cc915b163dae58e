"""`python -m upscaler_svc` / `upscaler-svc`: the upscaler process (UPSCALER_*, JANITOR_ADDR, S3_*)."""

from mesh.config import S3Settings
from mesh.server import service_main
from upscaler_svc.config import UpscalerSettings
from upscaler_svc.server import UpscalerServer

main = service_main("upscaler", UpscalerServer, UpscalerSettings, S3Settings)

if __name__ == "__main__":
    main()
