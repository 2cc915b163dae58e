"""Compressor service: the smallest file that meets a VMAF-NEG target, scene by scene."""
