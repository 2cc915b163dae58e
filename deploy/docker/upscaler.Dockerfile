# GPU upscaler on NVIDIA's TensorRT image: CUDA 13.0, cuDNN, TensorRT 10.13 and Python 3.12
# (nvcr.io/nvidia/tensorrt 25.10-py3). Needs the NVIDIA Container Toolkit at run time.
# Build from the repository root: docker build -f deploy/docker/upscaler.Dockerfile .
FROM nvcr.io/nvidia/tensorrt:25.10-py3 AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv --system-site-packages /venv
ENV PATH=/venv/bin:$PATH
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu130 torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mesh mesh
COPY janitor_svc janitor_svc
COPY compressor_svc compressor_svc
COPY upscaler_svc upscaler_svc
COPY miner_gateway miner_gateway
COPY vidaio_cli vidaio_cli
RUN pip install --no-cache-dir . \
    && pip uninstall -y opencv-python \
    && pip install --no-cache-dir --force-reinstall --no-deps opencv-python-headless==5.0.0.93

FROM nvcr.io/nvidia/tensorrt:25.10-py3
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/venv/bin:$PATH \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
RUN useradd --uid 10001 --create-home mesh && mkdir -p /work && chown 10001 /work
COPY --from=build /venv /venv
USER 10001
WORKDIR /home/mesh
# Convert the bundled official weights to PyTorch at build time, so the first start needs no download.
RUN python -m upscaler_svc.weights prepare
CMD ["python", "-m", "upscaler_svc"]
