// PM2 alternative to compose, for bare-metal operators (as the subnet's own docs run miners):
//   make test            # creates .venv once
//   pm2 start deploy/ecosystem.config.js && pm2 save
// Redis and an S3 endpoint must already run; settings come from the environment or a .env file
// in the repository root (see deploy/.env.example). After editing .env: pm2 restart all --update-env.
const path = require("path");

const root = path.resolve(__dirname, "..");
const python = path.join(root, ".venv", "bin", "python");

function service(name, module, extraEnv = {}) {
  return {
    name,
    script: python,
    args: ["-m", module],
    cwd: root,
    interpreter: "none",
    autorestart: true,
    max_restarts: 50,
    restart_delay: 2000,
    // Python handles SIGTERM as a graceful drain; PM2's default SIGINT would skip the janitor flush.
    kill_signal: "SIGTERM",
    kill_timeout: 30000,
    env: { OTEL_SERVICE_NAME: name, ...extraEnv },
  };
}

module.exports = {
  apps: [
    service("janitor", "janitor_svc"),
    service("upscaler", "upscaler_svc"),
    service("compressor", "compressor_svc"),
    service("gateway", "miner_gateway"),
  ],
};
