"""Upscaler service: Real-ESRGAN video upscaling for the subnet's upscaling tasks."""
