# CPU image shared by the janitor, compressor and gateway (each compose service picks its command).
# Build from the repository root: docker build -f deploy/docker/cpu.Dockerfile .
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
# PyPI's default torch is a multi-GB CUDA build; the CPU wheel is all these services need.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mesh mesh
COPY janitor_svc janitor_svc
COPY compressor_svc compressor_svc
COPY upscaler_svc upscaler_svc
COPY miner_gateway miner_gateway
COPY vidaio_cli vidaio_cli
RUN pip install --no-cache-dir . \
    # scenedetect pulls the GUI OpenCV (needs libGL); keep only the headless build.
    && pip uninstall -y opencv-python \
    && pip install --no-cache-dir --force-reinstall --no-deps opencv-python-headless==5.0.0.93

FROM python:3.11.14-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/venv/bin:$PATH
RUN useradd --uid 10001 --create-home mesh && mkdir -p /work && chown 10001 /work
COPY --from=build /venv /venv
USER 10001
WORKDIR /home/mesh
CMD ["python", "-m", "janitor_svc"]
