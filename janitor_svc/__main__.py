"""`python -m janitor_svc` / `janitor-svc`: the janitor process (JANITOR_*, REDIS_URL, S3_*)."""

from janitor_svc.config import JanitorSettings
from janitor_svc.server import JanitorServer
from mesh.config import RedisSettings, S3Settings
from mesh.server import service_main

main = service_main("janitor", JanitorServer, JanitorSettings, RedisSettings, S3Settings)

if __name__ == "__main__":
    main()
